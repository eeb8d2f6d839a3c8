#!/usr/bin/env python3
"""Benchmark: the decompression bomb of issue 11 item 12 -- a ~2 MB gzip layer holding one 2 GiB
file of zeros -- pulled by rootless, against `gunzip | tar x` of the same blob on this machine.

The layer is built streaming (tests/fixtures/hostile_pull.py) and pushed with plain registry-v2
uploads to a throw-away docker-registry on loopback. Then, alternating, N times each:

- `rootless pull -q` into an empty data-root (`ROOTLESS_WARM=0`, so the pull runs in the process we
  measure): wall time, and the peak RSS of the CLI and its unpack child
  (getrusage(RUSAGE_CHILDREN).ru_maxrss in a wrapper);
- `gunzip -c blob | tar -x -C dir` (GNU tar): wall time.

The issue's bar: under 200 MB RSS, within 2x the time of `gunzip | tar x`.
Run as the unprivileged user (the one with /etc/subuid ranges):
    python3 bench/bench_pull_bomb.py [--runs 3] [--pyz dist/rootless.pyz] [--gib 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

from bench_pull import rm_userns, rootless_cmd, rootless_env, write_config  # noqa: E402

from fixtures.hostile_pull import build_zero_bomb, peak_rss_kib, push_bomb  # noqa: E402
from fixtures.registry import Registry  # noqa: E402


def gunzip_tar(blob: str, dest: str) -> float:
    os.makedirs(dest)
    t0 = time.monotonic()
    gz = subprocess.Popen(["gunzip", "-c", blob], stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", dest], stdin=gz.stdout, check=True)
    assert gz.stdout is not None
    gz.stdout.close()
    if gz.wait() != 0 or tar.returncode != 0:
        raise SystemExit("gunzip | tar x failed")
    dt = time.monotonic() - t0
    shutil.rmtree(dest)
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pyz", default="", help="time this .pyz instead of the source tree")
    ap.add_argument("--gib", type=float, default=2.0, help="size of the file of zeros (GiB)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bench-bomb-", dir="/var/tmp")
    reg = None
    try:
        t0 = time.monotonic()
        bomb = build_zero_bomb(os.path.join(work, "bomb.tar.gz"), int(args.gib * (1 << 30)))
        print(f"layer: {bomb.size / 1e6:.1f} MB gzip -> {bomb.tar_size / 1e9:.2f} GB tar "
              f"(built in {time.monotonic() - t0:.1f} s)")
        reg = Registry(os.path.join(work, "registry"))
        os.makedirs(reg.root, exist_ok=True)
        reg.start()
        pushed = push_bomb(reg, "bench/bomb", bomb)
        rl_times, rl_rss, gt_times = [], [], []
        for i in range(args.runs):
            gt_times.append(gunzip_tar(bomb.path, os.path.join(work, f"gunzip-{i}")))
            home = os.path.join(work, f"home-{i}")
            os.makedirs(home)
            env = rootless_env(home)
            env["ROOTLESS_WARM"] = "0"
            write_config(home, f'insecure-registries = ["{reg.host}"]\n')
            t1 = time.monotonic()
            rc, _, err, rss = peak_rss_kib(rootless_cmd(args.pyz) + ["pull", "-q", pushed.ref], env, timeout=1800)
            dt = time.monotonic() - t1
            if rc != 0:
                raise SystemExit(f"rootless pull failed: {err}")
            rl_times.append(dt)
            rl_rss.append(rss / 1024)
            rm_userns(os.path.join(home, ".local"), env)
            print(f"  run {i + 1}: gunzip|tar x {gt_times[-1]:.1f} s; rootless pull {dt:.1f} s, "
                  f"peak RSS {rss / 1024:.0f} MiB", flush=True)
        rl, gt = statistics.median(rl_times), statistics.median(gt_times)
        print(f"gunzip | tar x: median {gt:.1f} s of {[round(x, 1) for x in gt_times]}")
        print(f"rootless pull:  median {rl:.1f} s of {[round(x, 1) for x in rl_times]}, "
              f"peak RSS max {max(rl_rss):.0f} MiB")
        print(f"ratio rootless/gunzip|tar: {rl / gt:.2f} (the bar: 2.0)")
        print(json.dumps({"gib": args.gib, "gunzip_tar_s": round(gt, 1), "rootless_pull_s": round(rl, 1),
                          "ratio": round(rl / gt, 2), "peak_rss_mib": round(max(rl_rss))}))
        return 0
    finally:
        if reg is not None:
            reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
