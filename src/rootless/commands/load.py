"""rootless load: load images from a tar archive (docker-archive or OCI layout), like `docker load`."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from rootless.errors import RootlessError, UsageError


def add_arguments(p) -> None:
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


def main(args, ctx) -> int:
    from rootless.engine import events
    from rootless.image import archive

    path = args.input
    tmp = None
    if not path:
        if sys.stdin.isatty():
            raise UsageError("load: requested load from stdin, but stdin is empty",
                             "use -i FILE, or pipe an archive in: `rootless load < file.tar`")
        # tar members are read in any order: spool stdin to a file first
        d = os.path.join(ctx.config.data_root, "image", "tmp")
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="load-", suffix=".tar", dir=d)
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        path = tmp
    elif not os.path.exists(path):
        raise RootlessError(f"load `{path}`: no such file", "check the path given with -i")
    try:
        lines = archive.load(ctx.config, path)
    finally:
        if tmp:
            os.unlink(tmp)
    events.images(ctx.config, "load", [line.split(": ", 1)[-1] for line in lines])
    if not args.quiet:
        sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
