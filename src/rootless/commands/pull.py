"""rootless pull: download an image from a registry, like `docker pull`."""

from __future__ import annotations

import sys

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]", help="The image to pull")
    p.add_argument("--platform", help="Set platform if the image is multi-platform (os/arch[/variant])")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images (not supported)")


def main(args, ctx) -> int:
    from rootless.engine import events
    from rootless.image import pull, reference

    if args.all_tags:
        raise UsageError("pull --all-tags: not supported", "pull each tag by name")
    ref = reference.parse(args.name).with_default_tag()
    pull.pull(ctx.config, args.name, platform=args.platform, quiet=args.quiet, out=sys.stdout)
    events.image_ref(ctx.config, "pull", args.name)
    sys.stdout.write(str(ref) + "\n")
    return 0
