"""rootless stats: containers' CPU, memory, network, block I/O and process counts, like docker stats.

Without --no-stream the table is redrawn every second (the screen cleared first, as docker does)
until interrupted. CPU % is computed from two samples of a container's cgroup; a running container
without a cgroup (cgroup v1 / hybrid host) shows `--` where a cgroup is needed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, List

from rootless.errors import UsageError

INTERVAL = 1.0  # seconds between refreshes (docker's stats collector samples once a second)
NO_STREAM_GAP = 0.5  # seconds between the two samples of --no-stream (for CPU %)
CLEAR = "\033[2J\033[H"


def add_arguments(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--format", default=None, metavar="string",
                   help="Format output using a Go template ('table', 'json', 'table TEMPLATE'); fields: "
                        ".Container .Name .ID .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO .PIDs "
                        "(and .MemLimit .CPULimit .PIDsLimit)")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


HEADERS = {
    "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS", "MemLimit": "MEM LIMIT", "CPULimit": "CPU LIMIT", "PIDsLimit": "PIDS LIMIT",
}
DEFAULT_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def _render(fmt: str, rows: List[Dict[str, str]]) -> str:
    from rootless.cli import gotemplate

    try:
        return gotemplate.format_rows(fmt, rows, HEADERS)
    except Exception as e:  # noqa: BLE001 - a template error is the user's
        raise UsageError(f"parse --format: {e}", "see https://docs.docker.com/config/formatting/")


def main(args, ctx) -> int:
    from rootless import engine

    fmt = args.format or getattr(ctx.config, "stats_format", "") or ""
    if not fmt or fmt == "table":
        fmt = DEFAULT_FORMAT
    _render(fmt, [])  # a bad template fails before any sampling
    prev: Dict[str, Any] = {}
    first = True
    try:
        while True:
            # while streaming, a container given that is removed meanwhile drops out
            samples = engine.sample_stats(ctx.config, args.containers, args.all, missing_ok=not first)
            if args.no_stream and first and any(s.running for s, _ in samples):
                prev = {s.cid: s for s, _ in samples}
                time.sleep(NO_STREAM_GAP)
                samples = engine.sample_stats(ctx.config, args.containers, args.all, missing_ok=True)
            rows = [engine.stats_row(prev.get(s.cid), s, args.no_trunc, ref) for s, ref in samples]
            prev = {s.cid: s for s, _ in samples}
            text = _render(fmt, rows)
            if args.no_stream:
                sys.stdout.write(text)
                return 0
            sys.stdout.write(CLEAR + text)
            sys.stdout.flush()
            first = False
            time.sleep(INTERVAL)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
