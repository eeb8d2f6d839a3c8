"""rootless load: load images from a tar archive (docker-archive or OCI layout), like `docker load`."""

from __future__ import annotations

import sys

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


def main(args, ctx) -> int:
    from rootless.engine import images

    if args.input:
        lines = images.load(ctx.config, args.input)
    else:
        if sys.stdin.isatty():
            raise UsageError("load: requested load from stdin, but stdin is empty",
                             "use -i FILE, or pipe an archive in: `rootless load < file.tar`")
        lines = images.load(ctx.config, stream=sys.stdin.buffer)
    if not args.quiet:
        sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
