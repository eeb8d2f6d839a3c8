"""rootless unpause: thaw a paused container (cgroup v2 freezer)."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless.commands.stop import each
    from rootless.engine import containers

    return each(args.containers, lambda ref: containers.pause(ctx.config, ref, False))
