"""rootless stop: the container's StopSignal, then SIGKILL after the grace period."""

from __future__ import annotations

import sys

from rootless.errors import RootlessError


def add_arguments(p) -> None:
    p.add_argument("-s", "--signal", default=None, metavar="string", help="Signal to send to the container")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, default=None, metavar="int",
                   help="Seconds to wait before killing the container (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def each(refs, fn) -> int:
    """Run ``fn(ref)`` for every container, print the ref on success, report errors docker's way."""
    from rootless.cli import render_error

    status = 0
    for ref in refs:
        try:
            fn(ref)
        except RootlessError as e:
            render_error(e)
            status = 1
            continue
        sys.stdout.write(ref + "\n")
        sys.stdout.flush()
    return status


def main(args, ctx) -> int:
    from rootless.engine import containers

    return each(args.containers, lambda ref: containers.stop(ctx.config, ref, args.time, args.signal))
