"""rootless history: show the history of an image, like `docker history`."""

from __future__ import annotations

import sys
from typing import Any, Dict, List

HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
           "Size": "SIZE", "Comment": "COMMENT"}


def add_arguments(p) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--format", help="Format output using a Go template")
    p.add_argument("-H", "--human", default="true", nargs="?", const="true",
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")


def ellipsis(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def history_rows(entries, no_trunc: bool = False, human: bool = True) -> List[Dict[str, Any]]:
    """The --format fields of each engine.images.HistoryEntry (newest first)."""
    from rootless.cli.output import since
    from rootless.units import human_size

    return [{
        "ID": e.id if no_trunc or e.id == "<missing>" else e.id[7:19],
        "CreatedSince": since(e.created) if human else e.created,
        "CreatedAt": e.created,
        "CreatedBy": e.created_by if no_trunc else ellipsis(e.created_by.replace("\t", " "), 45),
        "Size": human_size(e.size) if human else str(e.size),
        "Comment": e.comment,
    } for e in entries]


def main(args, ctx) -> int:
    from rootless.cli.output import format_rows
    from rootless.cli.tabwriter import table as tabwrite
    from rootless.engine import images

    human = str(args.human).lower() not in ("false", "0")
    rows = history_rows(images.history(ctx.config, args.image), args.no_trunc, human)
    if args.quiet:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    if args.format and args.format != "table":
        sys.stdout.write(format_rows(args.format, rows, HEADERS))
        return 0
    cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    sys.stdout.write(tabwrite([[HEADERS[c] for c in cols]] + [[str(r[c]) for c in cols] for r in rows]))
    return 0
