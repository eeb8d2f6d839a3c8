"""rootless logs: the output of a container from its json-file log, across rotated files."""

from __future__ import annotations

import sys
import time

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output (ends when the container stops)")
    p.add_argument("-n", "--tail", default="all", metavar="string", help='Number of lines to show from the end of the logs (default "all")')
    p.add_argument("--since", default="", metavar="string",
                   help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
    p.add_argument("--until", default="", metavar="string",
                   help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("container", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine, timefmt
    from rootless.cli.when import parse_when

    if args.tail in ("all", ""):
        tail = -1
    else:
        try:
            tail = int(args.tail)
        except ValueError:
            raise UsageError(f"invalid --tail `{args.tail}`", "give a number of lines, or all")
        tail = -1 if tail < 0 else tail
    now = time.time()
    since = parse_when(args.since, now, "--since")
    until = parse_when(args.until, now, "--until")
    entries = engine.logs(ctx.config, args.container, since, until, tail, follow=args.follow)
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    try:
        for r in entries:
            f = err if r.stream == "stderr" else out
            data = r.text.encode("utf-8")
            if args.timestamps:
                data = timefmt.fixed_nano(r.time_ns).encode() + b" " + data
            f.write(data)
            f.flush()
    except KeyboardInterrupt:
        return 0
    return 0
