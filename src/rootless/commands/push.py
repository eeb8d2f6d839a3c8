"""rootless push: upload an image to a registry, like `docker push`."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG]", help="The image to push")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags (not supported)")


def main(args, ctx) -> int:
    from rootless.engine import images

    images.push(ctx.config, args.name, quiet=args.quiet, out=sys.stdout, all_tags=args.all_tags)
    return 0
