"""rootless commit: a new image from a container's changes (its writable layer as a new layer)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p) -> None:
    p.add_argument("-a", "--author", default="", metavar="string", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], metavar="list", help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", metavar="string", help="Commit message")
    p.add_argument("-p", "--pause", action="store_true", default=True,
                   help="Pause container during commit (default true; --pause=false to not)")
    # docker's boolean flag takes its value after `=` only (`--pause=false`); a separate word is
    # the container, so these exact spellings are options of their own
    for spelling, value in (("false", False), ("0", False), ("true", True), ("1", True)):
        p.add_argument(f"--pause={spelling}", dest="pause", action="store_const", const=value, help=argparse.SUPPRESS)
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", default="", metavar="REPOSITORY[:TAG]")


def main(args, ctx) -> int:
    from rootless import engine

    image_id = engine.commit(ctx.config, args.container, args.repository, args.change, args.message, args.author,
                             pause=args.pause)
    sys.stdout.write(image_id + "\n")
    return 0
