"""Throughput of a published port: a 100 MB download through each of our port drivers, against the
same server reached directly (host network) and, where installed, Podman's `-p` (rootlessport).

    python3 bench/bench_net.py            # as the unprivileged user

The server is busybox httpd (sendfile) in a user+network namespace made by `unshare`, connected by
slirp4netns as a container would be; the client is curl writing to /dev/null. Median of 3 runs.

Podman's row: `podman run -d -p 127.0.0.1:PORT:80` (slirp4netns with its rootlessport forwarder, the
rootless default) of the busybox image bench_run.py imports from busybox-static, in a private store,
serving the same file (bind-mounted read-only) with the same busybox httpd. On hybrid-cgroup hosts
the cgroup2 mount is hidden inside Podman's rootless mount namespace, as bench_run.py does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_run  # noqa: E402  (its Podman: private store, busybox image, cgroup2 workaround)
import common  # noqa: E402

sys.path.insert(0, os.path.join(common.ROOT, "src"))
from rootless import network  # noqa: E402
from rootless.network import PortSpec  # noqa: E402

SIZE = 100 * 1000 * 1000
RUNS = 3


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def download(port: int) -> float:
    """Seconds to fetch the file once (checked for size)."""
    t0 = time.perf_counter()
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", f"http://127.0.0.1:{port}/big"],
                       capture_output=True, text=True, timeout=120)
    dt = time.perf_counter() - t0
    if p.returncode != 0 or int(float(p.stdout or 0)) != SIZE:
        raise RuntimeError(f"download through port {port} failed: {p.stderr.strip()} ({p.stdout} bytes)")
    return dt


def wait_http(port: int) -> None:
    for _ in range(100):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"no server on port {port}")


class PodmanWeb(bench_run.Podman):
    """busybox httpd serving ``www`` in `podman run -d -p 127.0.0.1:PORT:80` (rootlessport)."""

    def __init__(self, work: str, driver: str, www: str, port: int):
        self.driver, self.port, self.name, self.started = driver, port, "rootless-bench-web", False
        super().__init__(work, driver)  # imports the image, hides the cgroup2 mount
        self.base = self.argv[:self.argv.index("run")]
        argv = self.base + ["run", "-d", "--name", self.name, "-p", f"127.0.0.1:{port}:80", "-v", f"{www}:/www:ro",
                            "localhost/rootless-bench-busybox", "httpd", "-f", "-p", "80", "-h", "/www"]
        try:
            # not a pipe: conmon, slirp4netns and rootlessport inherit it and keep it open for good
            with tempfile.TemporaryFile() as err:
                p = subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=err, timeout=120)
                if p.returncode != 0:
                    err.seek(0)
                    raise RuntimeError(f"podman run -d -p ...: {err.read().decode(errors='replace').strip()[-300:]}")
        except BaseException:
            self.close()  # stops the pause process
            raise
        self.started = True

    def close(self) -> None:
        if self.started:  # httpd as pid 1 ignores SIGTERM: do not wait the 10 s for it
            subprocess.run(self.base + ["rm", "-f", "-t", "0", self.name], env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        super().close()


def start_podman(www: str, work: str, notes: list):
    """The first storage driver with which Podman serves the file, or None (why is added to notes)."""
    for drv in ("overlay", "vfs"):
        pm = None
        try:
            pm = PodmanWeb(work, drv, www, free_port())
            wait_http(pm.port)
            return pm
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            notes.append(f"  podman -p ({drv}): failed: {str(e)[:300]}")
            if pm:
                pm.close()
    return None


def gibps(seconds: float) -> str:
    return f"{SIZE / seconds / (1 << 30):5.2f} GiB/s"


def main() -> int:
    for tool in ("curl", "busybox", "unshare", "nsenter", "slirp4netns"):
        if not common.have(tool):
            print(f"bench net: `{tool}` not found; skipped")
            return 0
    www = tempfile.mkdtemp(prefix="rootless-bench-net-")
    with open(os.path.join(www, "big"), "wb") as f:
        f.write(os.urandom(1 << 20) * (SIZE // (1 << 20)) + os.urandom(SIZE % (1 << 20)))
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("ok\n")
    lines = []
    notes = []
    procs = []
    handles = []
    podman = None
    # short: Podman's sockets live under it (a longer path made `podman run -d -p` hang here)
    pm_work = tempfile.mkdtemp(prefix="rlnet-", dir="/tmp")
    try:
        if common.have("podman"):
            podman = start_podman(www, pm_work, notes)
        else:
            notes.append("  podman: not installed here (no comparison)")
        # the same server on the host network: the baseline
        hp = free_port()
        procs.append(subprocess.Popen(["busybox", "httpd", "-f", "-p", f"127.0.0.1:{hp}", "-h", www]))
        targets = [("host network (no port forwarding)", hp)]
        for driver in ("builtin", "slirp4netns"):
            ns = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sleep", "600"])
            procs.append(ns)
            while os.stat(f"/proc/{ns.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
                time.sleep(0.01)
            state = tempfile.mkdtemp(prefix="rootless-bench-state-")
            h = network.setup(network.parse_mode(f"slirp4netns:port_handler={driver}"), ns.pid,
                              [PortSpec(80, 0, "127.0.0.1")], state_dir=state)
            handles.append((h, state))
            procs.append(subprocess.Popen(["nsenter", "--preserve-credentials", "-U", "-n", "-t", str(ns.pid),
                                           "busybox", "httpd", "-f", "-p", "80", "-h", www]))
            how = " (splice)" if driver == "builtin" and network.proxy.HAVE_SPLICE else ""
            targets.append((f"rootless -p, {driver} driver{how}", h.ports[0].host_port))
        if podman:
            targets.append((f"podman -p (rootlessport, {podman.driver})", podman.port))
        for _, port in targets:
            wait_http(port)
            download(port)  # warm the page cache and the path
        # rounds interleave the targets, so that load from elsewhere hits them all alike
        times = {name: [] for name, _ in targets}
        for _ in range(RUNS):
            for name, port in targets:
                times[name].append(download(port))
        base = common.median(times[targets[0][0]])
        for name, _ in targets:
            t = common.median(times[name])
            lines.append(f"  {name:<44} {gibps(t)}   x{base / t:.2f}")
        if podman:
            pm_t = common.median(times[targets[-1][0]])
            for name, _ in targets[1:-1]:
                t = common.median(times[name])
                lines.append(f"    {name} / podman -p: x{pm_t / t:.2f}" + (" (aim: >= 1)" if "builtin" in name else ""))
    finally:
        if podman:
            podman.close()
        for h, state in handles:
            h.teardown()
            shutil.rmtree(state, ignore_errors=True)
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(www, ignore_errors=True)
        from rootless import idmap
        from rootless.storage.base import remove_tree

        remove_tree(pm_work, idmap.load())  # Podman's layers may belong to subordinate uids
    common.report(f"published port, {SIZE // 1000 // 1000} MB download, median of {RUNS} (x = throughput relative to the host network)", lines + notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
