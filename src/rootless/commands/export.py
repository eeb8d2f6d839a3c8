"""rootless export: the container's filesystem as a tar archive (stdout, or -o FILE)."""

from __future__ import annotations

import os
import sys

from rootless.errors import RootlessError


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", default="", metavar="string", help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine

    if not args.output and os.isatty(1):
        raise RootlessError("export: refusing to write a tar archive to a terminal",
                            "use -o FILE, or redirect the output")
    if args.output:
        tmp = args.output + ".tmp"
        try:
            with open(tmp, "wb") as f:
                engine.export(ctx.config, args.container, f)
            os.rename(tmp, args.output)
        except OSError as e:
            raise RootlessError(f"write `{args.output}`: {e.strerror}", "check the path")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return 0
    engine.export(ctx.config, args.container, sys.stdout.buffer)
    return 0
