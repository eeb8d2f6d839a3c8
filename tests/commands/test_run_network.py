"""`run` with networks: slirp4netns by default, published ports, none, host loopback; limits on this host.

Only loopback and addresses inside the container's own network namespace are used.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from enginehelp import leftovers

pytestmark = [pytest.mark.nosubuid, pytest.mark.usefixtures("clean_data_root")]




def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_default_network_is_slirp4netns(rl, bb):
    r = rl.ok("run", "--rm", bb, "sh", "-c", "ip -4 addr show tap0; cat /etc/resolv.conf /etc/hosts")
    assert "inet 10.0.2.100/24" in r.stdout
    assert "nameserver 10.0.2.3" in r.stdout
    assert "10.0.2.2\thost.containers.internal" in r.stdout or "host.docker.internal" in r.stdout
    assert leftovers(rl.data_root) == []
    out = subprocess.run(["pgrep", "-f", f"slirp4netns.*{rl.data_root}"], capture_output=True, text=True)
    assert out.stdout == "", "slirp4netns outlived its container"


def test_network_none_has_only_loopback(rl, bb):
    r = rl.ok("run", "--rm", "--network", "none", bb, "ip", "-o", "link")
    names = [ln.split(":")[1].strip() for ln in r.stdout.splitlines()]
    assert names == ["lo"]
    assert "UP" in r.stdout or "LOWER_UP" in r.stdout


def test_published_port_serves_the_page(rl, bb):
    port = free_port()
    p = subprocess.Popen(
        rl.argv("run", "--rm", "--init", "-p", f"127.0.0.1:{port}:8080", bb, "sh", "-c",
                "echo hello-web > /tmp/index.html; httpd -f -p 8080 -h /tmp"),
        env=rl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read()
            except OSError:
                time.sleep(0.2)
        assert body == b"hello-web\n"
    finally:
        p.terminate()  # forwarded to the container (--init passes it on): httpd exits, so does run
        try:
            p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2)
    assert leftovers(rl.data_root) == []


def test_port_in_use_is_a_clear_error(rl, bb):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = rl("run", "--rm", "-p", f"127.0.0.1:{port}:80", bb, "true")
    assert r.returncode == 125 and str(port) in r.stderr and "hint:" in r.stderr, r
    assert "Traceback" not in r.stderr
    assert leftovers(rl.data_root) == []


def test_bad_publish_syntax(rl, bb):
    r = rl("run", "--rm", "-p", "80:abc", bb, "true")
    assert r.returncode == 125 and "error:" in r.stderr and "hint:" in r.stderr


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"from-host\n")

    def log_message(self, *a):
        pass


def test_host_loopback_only_when_allowed(rl, bb):
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    port = srv.server_address[1]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        cmd = f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 10.0.2.2 {port}'
        r = rl("run", "--rm", bb, "sh", "-c", cmd)
        assert "from-host" not in r.stdout
        r = rl.ok("run", "--rm", "--network", "slirp4netns:allow_host_loopback=true", bb, "sh", "-c", cmd)
        assert "from-host" in r.stdout
    finally:
        srv.shutdown()


def test_unknown_network_mode(rl, bb):
    r = rl("run", "--rm", "--network", "nosuch", bb, "true")
    assert r.returncode == 125 and "unknown network mode `nosuch`" in r.stderr


def _v2_at_root() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" /sys/fs/cgroup " in ln and " - cgroup2 " in ln for ln in f)


@pytest.mark.skipif(_v2_at_root(), reason="this host has cgroup v2: limits may be enforceable here")
def test_limits_fail_clearly_on_a_hybrid_host_and_run_without_works(rl, bb):
    for flags in (["--memory", "32m"], ["--pids-limit", "20"], ["--cpus", "0.5"]):
        r = rl("run", "--rm", *flags, bb, "true")
        assert r.returncode == 125, r
        assert r.stderr.startswith(f"error: apply `{flags[0]}`: this host uses cgroup v1"), r.stderr
        assert "hint:" in r.stderr and "Traceback" not in r.stderr
    assert leftovers(rl.data_root) == []
    assert rl("run", "--rm", bb, "true").returncode == 0
