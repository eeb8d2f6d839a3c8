"""rootless wait: block until containers stop, then print their exit codes."""

from __future__ import annotations

import sys

from rootless.errors import RootlessError


def add_arguments(p) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless.cli import render_error
    from rootless.engine import containers

    status = 0
    for ref in args.containers:
        try:
            code = containers.wait_exit(ctx.config, ref)
        except RootlessError as e:
            render_error(e)
            status = 1
            continue
        sys.stdout.write(f"{code}\n")
        sys.stdout.flush()
    return status
