"""rootless diff: the files a container added (A), changed (C) and deleted (D), from its writable layer."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("container", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine

    for kind, path in engine.diff(ctx.config, args.container):
        sys.stdout.write(f"{kind} {path}\n")
    return 0
