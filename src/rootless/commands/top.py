"""rootless top: the processes of a running container (its pid namespace), as `ps -ef` shows them."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_options", nargs="*", metavar="[ps OPTIONS]", help="accepted for docker compatibility; ignored")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli.tabwriter import table as tabwrite

    sys.stdout.write(tabwrite(engine.top(ctx.config, args.container), minwidth=1, padding=1))
    return 0
