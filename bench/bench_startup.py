"""Start-up cost of the CLI: `--version` and `info`, from the .pyz, with Python's import times.

    python3 bench/bench_startup.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def import_time(argv):
    """Total self+cumulative import time (microseconds) reported by -X importtime, and the top modules."""
    p = subprocess.run([argv[0], "-X", "importtime"] + argv[1:], capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)))
    top_level = [r for r in rows if r[2] == 1]
    total = sum(r[1] for r in top_level)
    heavy = sorted(top_level, key=lambda r: -r[1])[:5]
    return total, heavy


def main() -> int:
    base = common.rootless_argv()
    lines = []
    py_only = common.median(common.time_cmd([sys.executable, "-c", "pass"], n=20))
    lines.append(common.row("python3 -c pass", py_only))
    for args in (["--version"], ["info"], ["info", "--format", "{{.DockerRootDir}}"]):
        t = common.median(common.time_cmd(base + args, n=20))
        lines.append(common.row("rootless " + " ".join(args), t, py_only))
        total, heavy = import_time(base + args)
        lines.append(f"    imports: {total / 1000:.1f} ms; heaviest: " + ", ".join(f"{n} {c / 1000:.1f}ms" for _, c, _, n in heavy))
    pyz = base[-1]
    if pyz.endswith(".pyz"):
        lines.append(f"  .pyz size: {os.path.getsize(pyz) / 1e6:.2f} MB")
    common.report("start-up (median of 20; ratio to a bare python3)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
