"""rootless images: list images, like `docker images` (also `rootless image ls`)."""

from __future__ import annotations

import sys

HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
}


def add_arguments(p) -> None:
    p.add_argument("repository", nargs="?", help="Show only images of this repository (REPOSITORY[:TAG])")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output (dangling=true|false, reference=PATTERN)")
    p.add_argument("--format", help="Format output using a Go template ('table', 'json', 'table TEMPLATE')")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")


def main(args, ctx) -> int:
    from rootless.cli.output import format_rows, image_row
    from rootless.engine import images

    filters = images.parse_filters(args.filter, images.LIST_FILTERS)
    rows = [image_row(r, args.no_trunc) for r in images.list_images(ctx.config, filters, args.repository, args.all)]
    if args.quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    fmt = args.format
    if not fmt or fmt == "table":
        cols = ["Repository", "Tag"] + (["Digest"] if args.digests else []) + ["ID", "CreatedSince", "Size"]
        table = [[HEADERS[c] for c in cols]] + [[str(r[c]) for c in cols] for r in rows]
        from rootless.cli.tabwriter import table as tabwrite

        sys.stdout.write(tabwrite(table))
        return 0
    sys.stdout.write(format_rows(fmt, rows, HEADERS))
    return 0
