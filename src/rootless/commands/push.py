"""rootless push: upload an image to a registry, like `docker push`."""

from __future__ import annotations

import sys

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG]", help="The image to push")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags (not supported)")


def main(args, ctx) -> int:
    from rootless.engine import events
    from rootless.image import push

    if args.all_tags:
        raise UsageError("push --all-tags: not supported", "push each tag by name")
    push.push(ctx.config, args.name, quiet=args.quiet, out=sys.stdout)
    events.image_ref(ctx.config, "push", args.name)
    return 0
