"""rootless tag: create a tag TARGET_IMAGE that refers to SOURCE_IMAGE, like `docker tag`."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def main(args, ctx) -> int:
    from rootless.engine import images

    images.tag(ctx.config, args.source, args.target)
    return 0
