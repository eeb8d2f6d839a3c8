"""rootless rm: remove containers (their writable layer, record, logs and generated files)."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER", help="The containers to remove")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli.objects import each

    return each(args.containers,
                lambda ref: engine.rm(ctx.config, ref, force=args.force, volumes=args.volumes, reporter=ctx))
