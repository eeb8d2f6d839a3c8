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


def history_rows(img, no_trunc: bool = False, human: bool = True) -> List[Dict[str, Any]]:
    """Newest first, as docker: one row per history entry; layer sizes for non-empty layers."""
    from rootless.image.progress import human_size, since

    hist = list(img.config.get("history") or [])
    if not hist:
        hist = [{"created": img.created, "created_by": ""} for _ in img.layers]
    sizes = [max(layer.uncompressed_size, 0) for layer in img.layers]
    rows = []
    li = 0
    for h in hist:
        size = 0
        if not h.get("empty_layer"):
            size = sizes[li] if li < len(sizes) else 0
            li += 1
        created = str(h.get("created") or "")
        by = str(h.get("created_by") or "")
        rows.append({
            "ID": "<missing>",
            "CreatedSince": since(created) if human else created,
            "CreatedAt": created,
            "CreatedBy": by if no_trunc else ellipsis(by.replace("\t", " "), 45),
            "Size": human_size(size) if human else str(size),
            "Comment": str(h.get("comment") or ""),
        })
    rows.reverse()
    if rows:
        rows[0]["ID"] = img.id if no_trunc else img.id[7:19]
    return rows


def main(args, ctx) -> int:
    from rootless.cli.tabwriter import table as tabwrite
    from rootless.commands.images import HEADERS as _unused  # noqa: F401
    from rootless.commands.images import format_rows
    from rootless.image.store import ImageStore

    img = ImageStore(ctx.config.data_root).require(args.image)
    human = str(args.human).lower() not in ("false", "0")
    rows = history_rows(img, args.no_trunc, human)
    if args.quiet:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    if args.format and args.format != "table":
        sys.stdout.write(format_rows(args.format, rows, HEADERS))
        return 0
    cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    sys.stdout.write(tabwrite([[HEADERS[c] for c in cols]] + [[str(r[c]) for c in cols] for r in rows]))
    return 0
