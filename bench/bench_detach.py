"""Detached containers: the monitor's memory per container, `run -d` and `exec true` times, against
Podman's conmon and `podman exec` where Podman is installed.

    python3 bench/bench_detach.py            # N=10 containers, medians

Self-contained like bench_run.py (whose image builder and Podman setup it reuses): a busybox
image from the host's busybox-static in a private data-root, no registry, no network. Memory is
read from /proc/PID/status (VmRSS) and /proc/PID/smaps_rollup (Pss: what one more container
really costs, shared pages of the interpreter split among the monitors).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_run  # noqa: E402
import common  # noqa: E402

N = int(os.environ.get("ROOTLESS_BENCH_N", "10"))


def mem_kib(pid: int):
    """(VmRSS, Pss) in KiB; None when unreadable."""
    rss = pss = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def timed(argv, env) -> tuple:
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-6:])} failed ({p.returncode}): {p.stderr.decode()[-300:]}")
    return dt, p.stdout.decode().strip()


def ours(base, env, data_root) -> dict:
    import json

    run_t, exec_t, rss, pss, ids = [], [], [], [], []
    try:
        for _ in range(N):
            dt, cid = timed(base + ["run", "-d", "--network", "none", bench_run.REF, "sleep", "1000"], env)
            run_t.append(dt)
            ids.append(cid)
        time.sleep(0.5)
        for cid in ids:
            with open(os.path.join(data_root, "containers", cid, "config.json")) as f:
                mon = json.load(f)["State"]["MonitorPid"]
            r, p = mem_kib(mon)
            rss.append(r or 0)
            pss.append(p or 0)
        for cid in ids:
            exec_t.append(timed(base + ["exec", cid, "true"], env)[0])
    finally:
        if ids:
            subprocess.run(base + ["rm", "-f"] + ids, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"run -d": common.median(run_t), "exec true": common.median(exec_t),
            "rss": common.median(rss), "pss": common.median(pss)}


def conmons(short: str):
    """Our conmon processes: the ones whose command line names this Podman's runroot."""
    out = []
    for n in os.listdir("/proc"):
        if not n.isdigit():
            continue
        try:
            with open(f"/proc/{n}/comm") as f:
                if f.read().strip() != "conmon":
                    continue
            with open(f"/proc/{n}/cmdline", "rb") as f:
                if short.encode() not in f.read():
                    continue
        except OSError:
            continue
        out.append(int(n))
    return out


def podman(work: str, driver: str) -> dict:
    pm = bench_run.Podman(work, driver)
    base = pm.argv[: pm.argv.index("run")]
    img = "localhost/rootless-bench-busybox"
    run_t, exec_t, ids = [], [], []
    try:
        for _ in range(N):
            dt, cid = timed(base + ["run", "-d", "--network", "none", img, "sleep", "1000"], pm.env)
            run_t.append(dt)
            ids.append(cid)
        time.sleep(0.5)
        mems = [mem_kib(p) for p in conmons(pm.short)]
        for cid in ids:
            exec_t.append(timed(base + ["exec", cid, "true"], pm.env)[0])
    finally:
        if ids:
            subprocess.run(base + ["rm", "-f", "-t", "0"] + ids, env=pm.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        pm.close()
    return {"run -d": common.median(run_t), "exec true": common.median(exec_t),
            "rss": common.median([m[0] or 0 for m in mems]) if mems else 0,
            "pss": common.median([m[1] or 0 for m in mems]) if mems else 0, "conmons": len(mems)}


def main() -> int:
    if not os.path.exists(bench_run.BUSYBOX):
        print(f"bench detach: needs {bench_run.BUSYBOX} (apt-get install busybox-static)", file=sys.stderr)
        return 1
    base = common.rootless_argv()
    work = os.environ.get("ROOTLESS_BENCH_HOME") or tempfile.mkdtemp(prefix="rootless-bench-detach-")
    home = os.path.join(work, "auto")
    env = bench_run.home_env(home)
    bench_run.make_image(env)
    subprocess.run(base + ["run", "--rm", "--network", "none", bench_run.REF, "true"], env=env, check=True)
    data_root = os.path.join(home, ".local", "share", "rootless")
    rows = {"rootless (monitor)": ours(base, env, data_root)}
    notes = []
    if common.have("podman"):
        for drv in ("overlay",):
            try:
                rows[f"podman ({drv}, conmon)"] = podman(work, drv)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                notes.append(f"  podman ({drv}): failed: {str(e)[:200]}")
    else:
        notes.append("  podman: not installed here (no comparison)")
    lines = []
    for name, r in rows.items():
        lines.append(f"  {name:<24} run -d {r['run -d'] * 1000:7.1f} ms   exec true {r['exec true'] * 1000:7.1f} ms   "
                     f"RSS {r['rss'] / 1024:6.1f} MiB   PSS {r['pss'] / 1024:6.1f} MiB per container")
    common.report(f"detach (N={N} containers, medians)", lines + notes)
    if not os.environ.get("ROOTLESS_BENCH_HOME"):
        sys.path.insert(0, os.path.join(common.ROOT, "src"))
        from rootless import idmap
        from rootless.storage.base import remove_tree

        remove_tree(work, idmap.load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
