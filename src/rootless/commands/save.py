"""rootless save: save one or more images to a tar archive (docker-archive), like `docker save`."""

from __future__ import annotations

import sys

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")


def main(args, ctx) -> int:
    from rootless.engine import images

    if not args.output and sys.stdout.isatty():
        raise UsageError("save: refusing to write the archive to a terminal",
                         "use -o FILE, or redirect the output: `rootless save IMAGE > file.tar`")
    if args.output:
        images.save(ctx.config, args.images, args.output)
    else:
        sys.stdout.flush()
        images.save(ctx.config, args.images, stream=sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return 0
