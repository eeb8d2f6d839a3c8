"""rootless pull: download an image from a registry, like `docker pull`."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]", help="The image to pull")
    p.add_argument("--platform", help="Set platform if the image is multi-platform (os/arch[/variant])")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images (not supported)")


def main(args, ctx) -> int:
    from rootless.engine import images

    ref = images.pull(ctx.config, args.name, platform=args.platform, quiet=args.quiet, out=sys.stdout,
                      all_tags=args.all_tags)
    sys.stdout.write(ref + "\n")
    return 0
