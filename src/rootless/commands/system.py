"""rootless system: df (disk usage), prune (unused data), info and events (aliases of `rootless info`/`events`), warm (the warm server)."""

from __future__ import annotations

import sys
from typing import Any, Dict, List


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="system_command", metavar="COMMAND")
    df = sub.add_parser("df", help="Show docker-like disk usage", description="Show disk usage")
    df.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    df.add_argument("--format", help="Format output using a Go template ('json' for JSON)")
    pr = sub.add_parser("prune", help="Remove unused data", description="Remove unused data")
    pr.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    pr.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    pr.add_argument("--volumes", action="store_true", help="Prune anonymous volumes (not handled here)")
    pr.add_argument("--filter", action="append", default=[], help="Provide filter values (until=)")
    warm = sub.add_parser("warm", help="Show or stop the warm server that runs commands for you",
                          description="Show (status) or stop the per-user warm server (see rootless-system(1))")
    warm.add_argument("action", nargs="?", default="status", choices=("status", "stop"), help="status (default) or stop")
    _events_command().add_arguments(sub.add_parser("events", help="Get real time events", description="Get real time events"))
    info = sub.add_parser("info", help="Display system-wide information", description="Display system-wide information")
    _info_command().add_arguments(info)


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}


def df_rows(lines) -> List[Dict[str, Any]]:
    """engine.system.UsageLine items as docker's --format fields (sizes human, reclaimable with %)."""
    from rootless.units import human_size

    def pct(part: int, whole: int) -> str:
        if whole <= 0:
            return human_size(part)
        return f"{human_size(part)} ({int(part * 100 / whole)}%)"

    return [{"Type": u.type, "TotalCount": str(u.total), "Active": str(u.active), "Size": human_size(u.size),
             "Reclaimable": pct(u.reclaimable, u.size)} for u in lines]


def df_main(args, ctx) -> int:
    from rootless.cli.output import format_rows, image_row
    from rootless.cli.tabwriter import table as tabwrite
    from rootless.engine import images, system

    rows = df_rows(system.df(ctx.config))
    if args.format:
        sys.stdout.write(format_rows(args.format, rows, DF_HEADERS))
        return 0
    cols = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
    table = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]] + [[r[c] for c in cols] for r in rows]
    sys.stdout.write(tabwrite(table))
    if args.verbose:
        sys.stdout.write("\nImages space usage:\n\n")
        irows = [image_row(r) for r in images.list_images(ctx.config)]
        t = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
        t += [[r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"]] for r in irows]
        sys.stdout.write(tabwrite(t))
    return 0


def prune_main(args, ctx) -> int:
    from rootless.cli.output import confirm, prune_text
    from rootless.engine import images, system

    text = "WARNING! This will remove:\n" + (
        "  - all images without at least one container associated to them\n" if args.all
        else "  - all dangling images\n")
    if not confirm(text.rstrip("\n"), args.force):
        return 0
    until = images.parse_until(images.parse_filters(args.filter, images.PRUNE_FILTERS))
    sys.stdout.write(prune_text(system.prune(ctx.config, args.all, until)))
    return 0


def _info_command():
    """`system info` is `rootless info`."""
    from rootless.cli import command_module

    return command_module("info")


def _events_command():
    """`system events` is `rootless events`."""
    from rootless.cli import command_module

    return command_module("events")


def main(args, ctx) -> int:
    from rootless.errors import UsageError

    name = args.system_command
    if name == "df":
        return df_main(args, ctx)
    if name == "prune":
        return prune_main(args, ctx)
    if name == "warm":
        return warm_main(args)
    if name == "events":
        return int(_events_command().main(args, ctx) or 0)
    if name == "info":
        return int(_info_command().main(args, ctx) or 0)
    raise UsageError("system: a subcommand is needed", "see 'rootless system --help' (df, prune, info, warm)")


def warm_main(args) -> int:
    """`system warm [status|stop]`: the per-user server of rootless/warm.py."""
    from rootless.engine import system

    enabled, servers = system.warm_servers()
    if args.action == "status":
        if not enabled:
            sys.stdout.write("Warm server: off (ROOTLESS_WARM=0)\n")
        if not servers:
            sys.stdout.write("Warm server: not running (the next container command starts it)\n")
        for pid, sock in servers:
            sys.stdout.write(f"Warm server: running, pid {pid}, socket {sock}\n")
        return 0
    n = system.stop_warm_servers(servers)
    sys.stdout.write(f"stopped {n} warm server{'s' if n != 1 else ''}\n")
    return 0
