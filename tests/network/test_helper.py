"""The root helper, inside a test network namespace that plays "the host" (never the real one).

As root: `ip netns add` a namespace, run `rootless helper` in it; make container-like namespaces
as the unprivileged rltuser (`unshare --user --map-root-user --net`), ask for veths, and check
addresses, container-to-container TCP, a published port reached from "the host", cleanup when a
container dies, leases across a helper restart, and that rltnosub cannot take rltuser's namespace.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from netutil import PY, new_netns, nsenter

pytestmark = pytest.mark.root_only

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")

SERVE = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(("hi " + a[0] + "\\n").encode()); c.close()
"""
GET = """
import socket, sys, time
for i in range(50):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
        sys.stdout.write(c.recv(100).decode()); break
    except OSError as e:
        err = e; time.sleep(0.1)
else:
    sys.exit(f"connect: {err}")
"""


def as_user(name):
    pw = pwd.getpwnam(name)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--reset-env"]


def client(user, code, *args):
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(as_user(user) + ["env"] + [f"{k}={v}" for k, v in env.items()] + [PY, "-c", code, *args],
                          capture_output=True, text=True, timeout=30)


CONNECT = """
import json, sys
from rootless.network import helper_client, PortSpec
ports = [PortSpec.from_dict(p) for p in json.loads(sys.argv[3])]
try:
    lease = helper_client.connect(sys.argv[1], int(sys.argv[2]), ports)
except Exception as e:
    sys.exit(f"error: {e}")
print(json.dumps({"address": lease.address, "gateway": lease.gateway, "ports": [p.to_dict() for p in lease.ports]}))
"""


def run_in(ns, *argv, **kw):
    return subprocess.run(["ip", "netns", "exec", ns] + list(argv), capture_output=True, text=True, timeout=30, **kw)


class HelperProc:
    def __init__(self, ns, tmp_path, firewall):
        self.ns = ns
        self.firewall = firewall
        # the test users must reach the socket: /tmp/pytest-of-root is private
        self.sockdir = tempfile.mkdtemp(prefix="rlt-helper-")
        os.chmod(self.sockdir, 0o755)
        self.sock = os.path.join(self.sockdir, "helper.sock")
        self.state = str(tmp_path / "state")
        self.log = str(tmp_path / "helper.log")
        self.p = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=SRC, PYTHONDONTWRITEBYTECODE="1")
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-m", "rootless", "helper",
                                   "--socket", self.sock, "--state-dir", self.state, "--bip", "172.31.0.1/16",
                                   "--firewall", self.firewall],
                                  env=env, stderr=open(self.log, "ab"))
        for _ in range(100):
            if os.path.exists(self.sock):
                return
            assert self.p.poll() is None, open(self.log).read()
            time.sleep(0.05)
        raise AssertionError("the helper did not start: " + open(self.log).read())

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            self.p.wait(10)

    def close(self):
        self.stop()
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def text(self):
        return open(self.log).read()

    def ip(self, *args):
        return subprocess.run(["ip", "netns", "exec", self.ns, "ip"] + list(args), capture_output=True, text=True).stdout


@pytest.fixture(params=["nftables", "iptables"])
def helper(hostns, tmp_path, request):
    if request.param == "iptables" and not shutil.which("iptables", path="/usr/sbin:/sbin:/usr/bin"):
        pytest.skip("iptables is not installed")
    h = HelperProc(hostns, tmp_path, request.param)
    h.start()
    yield h
    h.close()


def connect(helper, pid, ports=(), user="rltuser"):
    r = client(user, CONNECT, helper.sock, str(pid), json.dumps(list(ports)))
    return r


def test_bridge_veths_container_to_container_dnat_cleanup_and_restart(helper):
    c1 = new_netns(as_user("rltuser"))
    c2 = new_netns(as_user("rltuser"))
    srv = None
    try:
        r1 = connect(helper, c1.pid, [{"container_port": 80, "host_port": 18080, "host_ip": "", "proto": "tcp"}])
        assert r1.returncode == 0, r1.stderr + helper.text()
        l1 = json.loads(r1.stdout)
        r2 = connect(helper, c2.pid)
        assert r2.returncode == 0, r2.stderr
        l2 = json.loads(r2.stdout)
        assert l1["address"].startswith("172.31.") and l2["address"].startswith("172.31.")
        assert l1["address"] != l2["address"] and l1["gateway"] == "172.31.0.1"
        assert l1["ports"] == [{"container_port": 80, "host_port": 18080, "host_ip": "", "proto": "tcp"}]
        inside = subprocess.run(as_user("rltuser") + nsenter(c1.pid, ["ip", "-o", "-4", "addr", "show", "eth0"]),
                                capture_output=True, text=True).stdout
        assert l1["address"] + "/16" in inside
        assert "rootless0" in helper.ip("-o", "link", "show", "type", "bridge")
        # a server in c1; c2 reaches it directly, "the host" through the published port
        srv = subprocess.Popen(as_user("rltuser") + nsenter(c1.pid, [PY, "-c", SERVE, "80"]))
        got = subprocess.run(as_user("rltuser") + nsenter(c2.pid, [PY, "-c", GET, l1["address"], "80"]),
                             capture_output=True, text=True, timeout=30)
        assert got.stdout == f"hi {l2['address']}\n", got.stderr
        got = run_in(helper.ns, PY, "-c", GET, "172.31.0.1", "18080")  # from the host itself: output chain
        assert got.stdout.startswith("hi "), got.stderr + helper.text()
        got = run_in(helper.ns + "-ext", PY, "-c", GET, "192.168.77.1", "18080")  # from the LAN: prerouting
        assert got.stdout == "hi 192.168.77.2\n", got.stderr + helper.text()  # the client's address is kept
        # the way out: c2 reaches a LAN server, masqueraded as the host
        lan = subprocess.Popen(["ip", "netns", "exec", helper.ns + "-ext", PY, "-c", SERVE, "7070"])
        try:
            got = subprocess.run(as_user("rltuser") + nsenter(c2.pid, [PY, "-c", GET, "192.168.77.2", "7070"]),
                                 capture_output=True, text=True, timeout=30)
            assert got.stdout == "hi 192.168.77.1\n", got.stderr
        finally:
            lan.kill()
            lan.wait()
        # the helper restarts: the leases are kept and still cleaned up later
        helper.stop()
        helper.start()
        assert f"lease {l1['address']}: pid {c1.pid} (uid" in helper.text()
        r3 = connect(helper, c1.pid)
        assert r3.returncode != 0 and "already has" in r3.stderr
        # the container goes: its veth and DNAT rules go too
        veth = "rlv" + format(int.from_bytes(bytes(map(int, l1["address"].split("."))), "big"), "08x")
        assert veth in helper.ip("-o", "link")
        srv.kill()
        c1.kill()
        c1.wait()
        for _ in range(100):
            if veth not in helper.ip("-o", "link") and "release " + l1["address"] in helper.text():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no cleanup: " + helper.text())
        if helper.firewall == "nftables":
            rules = run_in(helper.ns, "nft", "list", "ruleset").stdout
            assert "18080" not in rules and "masquerade" in rules
        else:
            rules = run_in(helper.ns, "iptables", "-t", "nat", "-S").stdout
            assert "18080" not in rules and "MASQUERADE" in rules
        # disconnect on request
        d = client("rltuser", "import sys; from rootless.network import helper_client as h; h.disconnect(sys.argv[1], "
                   f"{c2.pid})", helper.sock)
        assert d.returncode == 0, d.stderr
        assert "release " + l2["address"] + " (disconnect)" in helper.text()
    finally:
        for p in (srv, c1, c2):
            if p is not None:
                p.kill()


def test_another_uid_is_refused(helper):
    c1 = new_netns(as_user("rltuser"))
    try:
        r = connect(helper, c1.pid, user="rltnosub")
        assert r.returncode != 0
        uid = pwd.getpwnam("rltuser").pw_uid
        assert f"belongs to uid {uid}, not to uid {pwd.getpwnam('rltnosub').pw_uid}" in r.stderr
        r = connect(helper, os.getpid(), user="rltuser")  # a root process in the real host's namespace
        assert r.returncode != 0 and "belongs to uid 0" in r.stderr
        r = connect(helper, helper.p.pid, user="rltuser")  # the helper's own namespace
        assert r.returncode != 0 and ("helper's own network namespace" in r.stderr or "belongs to uid 0" in r.stderr)
        r = connect(helper, c1.pid, [{"container_port": 80, "host_port": 80, "host_ip": "", "proto": "tcp"}])
        assert r.returncode != 0 and "privileged" in r.stderr
        bad = client("rltuser", "import sys; from rootless.network import helper_client as h; "
                     "h.request(sys.argv[1], {'op': 'connect', 'pid': 'x'})", helper.sock)
        assert bad.returncode != 0 and "pid must be an integer" in bad.stderr
        assert "refused" in helper.text()
        assert "rlv" not in helper.ip("-o", "link")
    finally:
        c1.kill()
