"""rootless rmi: remove images, like `docker rmi` (also `rootless image rm`)."""

from __future__ import annotations

import sys

from rootless.errors import RootlessError


def add_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="Images to remove (name, name:tag, name@digest or id)")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")


def main(args, ctx) -> int:
    from rootless.cli import render_error
    from rootless.cli.output import delete_lines
    from rootless.engine import images

    status = 0
    for arg in args.images:
        try:
            sys.stdout.write(delete_lines(images.remove(ctx.config, arg, args.force)))
        except RootlessError as e:
            if len(args.images) == 1:
                raise
            sys.stdout.flush()
            render_error(e)
            status = 1
    return status
