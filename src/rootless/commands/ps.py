"""rootless ps: list containers, with docker's columns, filters and --format."""

from __future__ import annotations

import sys
from typing import Dict, List

from rootless.errors import UsageError

HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED", "Status": "STATUS",
    "Ports": "PORTS", "Names": "NAMES", "CreatedAt": "CREATED AT", "Size": "SIZE", "State": "STATE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
}
DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def add_arguments(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="filter",
                   help="Filter output based on conditions provided (status=, name=, label=, ancestor=, id=, exited=)")
    p.add_argument("--format", default=None, metavar="string", help="Format output using a Go template ('table', 'json', 'table TEMPLATE')")
    p.add_argument("-n", "--last", type=int, default=-1, metavar="int", help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all states)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")


def parse_filters(items: List[str]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise UsageError(f"invalid filter `{it}`", "use KEY=VALUE, e.g. status=exited")
        if k not in ("status", "name", "label", "ancestor", "id", "exited"):
            raise UsageError(f"invalid filter `{k}`", "use status=, name=, label=, ancestor=, id= or exited=")
        out.setdefault(k, []).append(v)
    return out


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli import gotemplate

    fmt = args.format or getattr(ctx.config, "ps_format", "") or ""
    if not fmt or fmt == "table":
        fmt = DEFAULT + ("\t{{.Size}}" if args.size else "")
    size = not args.quiet and (args.size or ".Size" in fmt)
    rows = engine.ps_rows(ctx.config, args.all, parse_filters(args.filter), args.last, args.latest, args.no_trunc, size)
    if args.quiet:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    try:
        out = gotemplate.format_rows(fmt, rows, HEADERS)
    except Exception as e:  # noqa: BLE001 - a template error is the user's
        raise UsageError(f"parse --format: {e}", "see https://docs.docker.com/config/formatting/")
    sys.stdout.write(out)
    return 0
