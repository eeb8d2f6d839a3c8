"""rootless top: the processes of a running container (its pid namespace), as `ps -ef` shows them."""

from __future__ import annotations

import sys

from rootless.errors import RootlessError


def add_arguments(p) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_options", nargs="*", metavar="[ps OPTIONS]", help="accepted for docker compatibility; ignored")


def main(args, ctx) -> int:
    from rootless import state
    from rootless.cli.tabwriter import table as tabwrite
    from rootless.engine import containers

    rec = state.Store(ctx.config.data_root).resolve(args.container)
    s = rec["State"]
    if not s.get("Running") or not state.is_alive(s):
        raise RootlessError(f"list the processes of `{rec['Name'].lstrip('/')}`: it is not running",
                            "start it first", exit_code=1)
    rows = containers.top_rows(int(s["Pid"]))
    sys.stdout.write(tabwrite(rows, minwidth=1, padding=1))
    return 0
