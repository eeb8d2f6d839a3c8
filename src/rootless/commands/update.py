"""rootless update: change the resource limits (and restart policy) of containers.

The engine (rootless.engine.update) changes a running container's cgroup at once and saves the new
limits in its record, so a stopped container gets them at its next start; a limit this host cannot
enforce fails with the reason and the fix, never silently.
"""

from __future__ import annotations

from rootless.errors import UsageError


def add_arguments(p) -> None:
    from rootless import limitflags

    limitflags.add_arguments(p)
    p.add_argument("--restart", default=None, metavar="string",
                   help="Restart policy to apply when a container exits (no, on-failure[:N], always, unless-stopped)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine, limitflags, limits
    from rootless.cli.objects import each

    if not limitflags.given(args) and args.restart is None:
        raise UsageError("you must provide one or more flags when using this command",
                         "for example `rootless update --memory 512m CONTAINER`")
    changes = limits.from_args(args)
    restart = engine.restart_policy(args.restart) if args.restart is not None else None
    return each(args.containers, lambda ref: engine.update(ctx.config, ref, changes, restart))
