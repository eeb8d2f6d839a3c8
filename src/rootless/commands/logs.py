"""rootless logs: the output of a container from its json-file log, across rotated files."""

from __future__ import annotations

import os
import re
import sys
import time

from rootless.errors import RootlessError, UsageError


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


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_when(text: str, now: float, flag: str) -> int:
    """A Go duration (10m, 1h30m: that long ago), an RFC 3339 time, a date, or unix seconds -> ns."""
    from rootless.logs import parse_time

    t = text.strip()
    if not t:
        return 0
    if _DUR.sub("", t) == "" and _DUR.search(t):
        secs = sum(float(n) * _UNIT[u] for n, u in _DUR.findall(t))
        return int((now - secs) * 1e9)
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return int(float(t) * 1e9)
    try:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", t):
            return parse_time(t + "T00:00:00Z")
        if "T" in t and not (t.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", t)):
            return parse_time(t + "Z")
        return parse_time(t)
    except (ValueError, IndexError):
        raise UsageError(f"invalid value for {flag} `{text}`",
                         "use a duration such as 10m or 1h30m, an RFC 3339 time such as 2024-05-01T10:00:00Z, "
                         "or unix seconds")


def main(args, ctx) -> int:
    from rootless import logs, state, timefmt

    store = state.Store(ctx.config.data_root)
    rec = store.resolve(args.container)
    lc = (rec.get("HostConfig") or {}).get("LogConfig") or {}
    if lc.get("Type") == "none":
        raise RootlessError(f"read the logs of `{rec['Name'].lstrip('/')}`: configured logging driver does not "
                            "support reading", "the container was created with --log-driver none")
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
    path = store.log_path(rec["Id"])  # not the record's LogPath: a path from a state file is not trusted
    out = sys.stdout.buffer
    err = sys.stderr.buffer

    def emit(r) -> None:
        f = err if r.stream == "stderr" else out
        data = r.text.encode("utf-8")
        if args.timestamps:
            data = timefmt.fixed_nano(r.time_ns).encode() + b" " + data
        f.write(data)
        f.flush()

    if not args.follow or until:
        for r in logs.read(path, since_ns=since, until_ns=until, tail=tail):
            emit(r)
        return 0
    cid = rec["Id"]
    seen_stopped = [False]

    def stopped() -> bool:
        # the monitor writes the last output before it records the exit: after the first time we
        # see the container stopped, one more read drains what is left, then we end
        if seen_stopped[0]:
            return True
        try:
            s = store.load(cid)["State"]
        except RootlessError:
            seen_stopped[0] = True
            return False
        if not (s.get("Running") or s.get("Restarting")):
            seen_stopped[0] = True
        return False

    if not os.path.exists(path):
        open(path, "ab").close() if os.path.isdir(os.path.dirname(path)) else None
    try:
        for r in logs.follow(path, since_ns=since, tail=tail, stop=stopped):
            emit(r)
    except KeyboardInterrupt:
        return 0
    return 0
