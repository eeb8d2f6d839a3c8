#!/usr/bin/env python3
"""Run every benchmark in bench/ (or the ones named): python3 bench/run.py [startup pull run ...]

Each bench_NAME.py prints its own table, with ratios to podman and crun where they are installed.
Run as the unprivileged user you would use rootless as; build dist/rootless.pyz first.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    wanted = sys.argv[1:]
    status = 0
    for path in sorted(glob.glob(os.path.join(HERE, "bench_*.py"))):
        name = os.path.basename(path)[6:-3]
        if wanted and name not in wanted:
            continue
        rc = subprocess.call([sys.executable, path])
        if rc != 0:
            print(f"bench {name}: failed with status {rc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
