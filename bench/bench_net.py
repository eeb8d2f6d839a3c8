"""Throughput of a published port: a 100 MB download through each of our port drivers, against the
same server reached directly (host network) and, where installed, Podman's `-p` (rootlessport).

    python3 bench/bench_net.py            # as the unprivileged user

The server is busybox httpd (sendfile) in a user+network namespace made by `unshare`, connected by
slirp4netns as a container would be; the client is curl writing to /dev/null. Median of 3 runs.
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
    procs = []
    handles = []
    try:
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
        if common.have("podman"):
            lines.append("  podman -p: run `podman run -d -p 127.0.0.1:PORT:80 IMAGE httpd` by hand (see notes)")
        else:
            lines.append("  podman: not installed (peers note: its rootlessport did about 1.7 GiB/s on these machines)")
    finally:
        for h, state in handles:
            h.teardown()
            shutil.rmtree(state, ignore_errors=True)
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(www, ignore_errors=True)
    common.report(f"published port, {SIZE // 1000 // 1000} MB download, median of {RUNS} (x = throughput relative to the host network)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
