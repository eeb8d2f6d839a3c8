"""Helpers for the benchmarks: timing, medians, the peers (podman, crun) when installed."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rootless_argv() -> List[str]:
    """The .pyz when built (what users run), else the source tree."""
    pyz = os.environ.get("ROOTLESS_PYZ") or os.path.join(ROOT, "dist", "rootless.pyz")
    if os.path.exists(pyz):
        return [sys.executable, pyz]
    return [sys.executable, "-m", "rootless"]


def env_for_source() -> Dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.path.join(ROOT, "src")
    return e


def time_cmd(argv: Sequence[str], n: int = 20, env: Optional[Dict[str, str]] = None, warmup: int = 2) -> List[float]:
    """Wall-clock seconds of ``n`` runs of argv (after ``warmup`` runs); raises if one fails."""
    times = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        p = subprocess.run(list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
        if i >= warmup:
            times.append(dt)
    return times


def time_fn(fn: Callable[[], None], n: int = 3) -> List[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def row(name: str, seconds: float, base: Optional[float] = None, unit: str = "ms") -> str:
    val = seconds * 1000 if unit == "ms" else seconds
    ratio = f"  x{seconds / base:.2f}" if base else ""
    return f"  {name:<44} {val:9.1f} {unit}{ratio}"


def report(title: str, lines: List[str]) -> None:
    print(f"== {title}")
    for ln in lines:
        print(ln)
    sys.stdout.flush()
