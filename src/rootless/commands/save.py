"""rootless save: save one or more images to a tar archive (docker-archive), like `docker save`."""

from __future__ import annotations

import sys

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")


def main(args, ctx) -> int:
    from rootless.engine import events
    from rootless.image import archive

    if not args.output and sys.stdout.isatty():
        raise UsageError("save: refusing to write the archive to a terminal",
                         "use -o FILE, or redirect the output: `rootless save IMAGE > file.tar`")
    if args.output:
        archive.save(ctx.config, args.images, args.output)
    else:
        sys.stdout.flush()
        archive.save(ctx.config, args.images, None, stdout=sys.stdout.buffer)
        sys.stdout.buffer.flush()
    events.images(ctx.config, "save", args.images)
    return 0
