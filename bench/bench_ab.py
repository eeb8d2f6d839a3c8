"""Before/after: the same command with two builds of rootless, interleaved round by round.

    python3 bench/bench_ab.py OLD.pyz NEW.pyz [-- ARGS...]     # default: run --rm --network none busybox true

Each build gets its own private HOME (data-root, config, warm server) with the bench busybox image
put into its store by that build's own code, so the two never share state. Rounds alternate A, B, so
that a change in the machine's load hits both alike. Prints the medians, warm (as users get it: the
warm server) and cold (ROOTLESS_WARM=0), and the ratio B/A. Run as the unprivileged user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_run  # noqa: E402
import common  # noqa: E402

N = int(os.environ.get("ROOTLESS_BENCH_N", "30"))


def setup(pyz: str, home: str) -> dict:
    env = bench_run.home_env(home)
    env["PYTHONPATH"] = pyz  # make_image uses this build's own store code
    bench_run.make_image(env)
    env.pop("PYTHONPATH")
    return env


def main() -> int:
    argv = sys.argv[1:]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = os.path.abspath(argv[0]), os.path.abspath(argv[1])
    cmd = argv[3:] if len(argv) > 2 and argv[2] == "--" else ["run", "--rm", "--network", "none", bench_run.REF, "true"]
    work = tempfile.mkdtemp(prefix="rootless-bench-ab-")
    try:
        envs = {}
        for name, pyz in (("A", a), ("B", b)):
            env = setup(pyz, os.path.join(work, name))
            envs[name] = (pyz, env, dict(env, ROOTLESS_WARM="0"))
        times = {(n, m): [] for n in envs for m in ("warm", "cold")}
        for i in range(N + 2):
            for name, (pyz, warm, cold) in envs.items():
                for mode, env in (("warm", warm), ("cold", cold)):
                    dt = bench_run.time_once([sys.executable, pyz] + cmd, env)
                    if i >= 2:
                        times[(name, mode)].append(dt)
        print(f"{' '.join(cmd)}: medians of {N} interleaved rounds")
        for mode in ("warm", "cold"):
            ma, mb = common.median(times[("A", mode)]), common.median(times[("B", mode)])
            print(f"  {mode}: A {ma * 1000:.1f} ms  B {mb * 1000:.1f} ms  B/A x{mb / ma:.2f}")
        for pyz, warm, _ in envs.values():
            subprocess.run([sys.executable, pyz, "system", "warm", "stop"], env=warm,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
