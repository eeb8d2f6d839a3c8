"""rootless unpause: thaw a paused container (cgroup v2 freezer)."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli.objects import each

    return each(args.containers, lambda ref: engine.unpause(ctx.config, ref))
