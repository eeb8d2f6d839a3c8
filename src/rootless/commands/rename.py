"""rootless rename: give a container a new name."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")


def main(args, ctx) -> int:
    from rootless import engine

    engine.rename(ctx.config, args.container, args.new_name)
    return 0
