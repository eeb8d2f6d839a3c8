"""Attacks on the root helper (issue 11, items 4, 5, 6 and 9), each performed as described.

Root orchestrates: "the host" is a network namespace made by the test (`ip netns add`, see
test_helper.py's ``hostns``), the helper runs in it, and the two unprivileged users rltuser and
rltnosub make container-like namespaces (`unshare --user --map-root-user --net`) and talk to it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import zipfile

import pytest
from netutil import PY, new_netns, nsenter
from test_helper import GET, SRC, HelperProc, as_user, client, connect, run_in

pytestmark = pytest.mark.root_only

IP = shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")

# a TCP server that answers every connection with a fixed word: who answered
SERVE_WORD = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(sys.argv[3].encode()); c.close()
"""
# one try, a short timeout: prints what answered, or "refused: ..."
GET_ONCE = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(c.recv(100).decode())
except OSError as e:
    print("failed:", e)
"""
# ARP spoofing from inside a namespace: gratuitous requests and replies claiming sys.argv[1]
# (another container's address) for this namespace's eth0, sent to everyone for 3 s
ARP_SPOOF = """
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)); s.bind(("eth0", 0))
mac = s.getsockname()[4]
victim, gw = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])
bcast = b"\\xff" * 6
def arp(op, tha, tpa):
    return bcast + mac + b"\\x08\\x06" + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, victim, tha, tpa)
end = time.monotonic() + 3
while time.monotonic() < end:
    s.send(arp(1, b"\\0" * 6, victim)); s.send(arp(2, bcast, gw)); s.send(arp(1, b"\\0" * 6, gw))
    time.sleep(0.1)
"""
# send one UDP datagram from a chosen source address
SEND_FROM = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the forged source need not be ours
s.bind((sys.argv[1], 0)); s.sendto(sys.argv[4].encode(), (sys.argv[2], int(sys.argv[3])))
"""
# a UDP server in "the host" printing each datagram's source address
UDP_LOG = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, a = s.recvfrom(100); print(a[0], data.decode(), flush=True)
"""


class Helper2(HelperProc):
    """HelperProc with extra arguments, or the .pyz run as root with a chosen environment."""

    def __init__(self, ns, tmp_path, firewall="nftables", extra=(), argv0=None, env=None):
        super().__init__(ns, tmp_path, firewall)
        self.extra, self.argv0, self.env = list(extra), argv0, env

    def start(self):
        if self.argv0 is None and not self.extra:
            return super().start()
        env = self.env if self.env is not None else dict(os.environ, PYTHONPATH=SRC, PYTHONDONTWRITEBYTECODE="1")
        argv0 = self.argv0 or [PY, "-m", "rootless"]
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns] + argv0 + [
            "helper", "--socket", self.sock, "--state-dir", self.state, "--bip", "172.31.0.1/16",
            "--firewall", self.firewall] + self.extra, env=env, stderr=open(self.log, "ab"))
        for _ in range(200):
            if os.path.exists(self.sock):
                return
            assert self.p.poll() is None, open(self.log).read()
            time.sleep(0.05)
        raise AssertionError("the helper did not start: " + open(self.log).read())


@pytest.fixture
def helper(hostns, tmp_path):
    h = Helper2(hostns, tmp_path, "nftables")
    try:
        h.start()
        yield h
    finally:
        h.close()


@pytest.fixture(params=["nftables", "iptables"])
def any_helper(hostns, tmp_path, request):
    """Both NAT backends (the bridge filter is nft's in both, when nft is installed)."""
    h = Helper2(hostns, tmp_path, request.param)
    try:
        h.start()
        yield h
    finally:
        h.close()


def in_ns(user, pid, code, *args, timeout=30):
    return subprocess.run(as_user(user) + nsenter(pid, [PY, "-c", code, *args]), capture_output=True, text=True,
                          timeout=timeout)


def ping_time(sock, user="rltuser"):
    code = ("import sys, time; from rootless.network import helper_client as h; t = time.monotonic(); "
            "h.ping(sys.argv[1]); print(time.monotonic() - t)")
    r = client(user, code, sock)
    assert r.returncode == 0, r.stderr
    return float(r.stdout)


def leases(helper):
    with open(os.path.join(helper.state, "leases.json")) as f:
        return json.load(f)["leases"]


# --- item 5: one user never reaches another user's containers ---------------------------------


def test_users_cannot_reach_or_arp_spoof_each_others_containers(any_helper):
    helper = any_helper
    a = new_netns(as_user("rltuser"))
    a2 = new_netns(as_user("rltuser"))
    b = new_netns(as_user("rltnosub"))
    procs = []
    try:
        la = json.loads(connect(helper, a.pid).stdout)
        assert connect(helper, a2.pid).returncode == 0
        rb = connect(helper, b.pid, user="rltnosub")
        assert rb.returncode == 0, rb.stderr + helper.text()
        lb = json.loads(rb.stdout)
        ip_a, ip_b = la["address"], lb["address"]
        procs.append(subprocess.Popen(as_user("rltuser") + nsenter(a.pid, [PY, "-c", SERVE_WORD, "0.0.0.0", "80", "A"])))
        # the host and A's own other container reach A's unpublished port; B does not
        assert run_in(helper.ns, PY, "-c", GET, ip_a, "80").stdout == "A"
        assert in_ns("rltuser", a2.pid, GET_ONCE, ip_a, "80", "3").stdout.strip() == "A"
        got = in_ns("rltnosub", b.pid, GET_ONCE, ip_a, "80", "3").stdout
        assert got.startswith("failed:"), f"user B reached user A's unpublished port: {got!r}"
        # B takes A's address too and claims it by ARP; the host's traffic for A must still go to A
        r = subprocess.run(as_user("rltnosub") + nsenter(b.pid, [IP, "addr", "add", ip_a + "/32", "dev", "eth0"]),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        procs.append(subprocess.Popen(as_user("rltnosub") + nsenter(b.pid, [PY, "-c", SERVE_WORD, ip_a, "80", "B"])))
        time.sleep(1.2)  # past the neighbour entry's locktime (1 s): an update would be taken now
        spoof = in_ns("rltnosub", b.pid, ARP_SPOOF, ip_a, "172.31.0.1")
        assert spoof.returncode == 0, spoof.stderr
        for _ in range(3):
            got = run_in(helper.ns, PY, "-c", GET_ONCE, ip_a, "80", "3").stdout.strip()
            assert got == "A", f"the host's traffic for {ip_a} went to {got!r} after B's ARP spoofing"
        neigh = subprocess.run(["ip", "netns", "exec", helper.ns, "ip", "neigh", "show", ip_a], capture_output=True,
                               text=True).stdout
        assert "PERMANENT" in neigh, neigh
        # a datagram with A's address forged as its source is dropped; B's own source passes
        log = subprocess.Popen(["ip", "netns", "exec", helper.ns, PY, "-u", "-c", UDP_LOG, "9999"],
                               stdout=subprocess.PIPE, text=True)
        procs.append(log)
        time.sleep(0.5)
        for src, word in ((ip_a, "forged"), (ip_b, "honest")):
            r = in_ns("rltnosub", b.pid, SEND_FROM, src, "172.31.0.1", "9999", word)
            assert r.returncode == 0, r.stderr
        time.sleep(1)
        log.kill()
        out = log.communicate()[0]
        assert f"{ip_b} honest" in out, out
        assert "forged" not in out, f"a datagram with a forged source reached the host: {out!r}"
    finally:
        for p in procs + [a, a2, b]:
            p.kill()


# --- item 6: concurrent clients, a deadline per request, never a crash ------------------------


def test_a_slow_client_does_not_stall_others(helper):
    slow = ("import socket, sys, time\n"
            "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); t = time.monotonic()\n"
            "for ch in b'{\"op\": \"ping\"}':\n"
            "    try: s.send(bytes([ch]))\n"
            "    except OSError: break\n"
            "    time.sleep(4)\n"
            "    if time.monotonic() - t > 14: break\n"
            "s.settimeout(1)\n"
            "try: print(s.recv(1000).decode())\n"
            "except OSError as e: print('no answer', e)\n")
    p = subprocess.Popen(as_user("rltnosub") + ["env", "PATH=/usr/bin:/bin", PY, "-c", slow, helper.sock],
                         stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        times = []
        for _ in range(3):
            times.append(ping_time(helper.sock))
            time.sleep(2)
        assert max(times) < 1.0, f"pings took {times} s while another client sent one byte every 4 s"
        out = p.communicate(timeout=30)[0]
        assert "not received within" in out, out
    finally:
        p.kill()


def test_pids_that_exit_at_once_get_errors_and_the_helper_keeps_serving(helper):
    # a namespace whose process exits right after it got its veth (killed as soon as the answer
    # comes), or before the helper could look at it (`true`), or in between (sleep 0.01)
    race = ("import json, subprocess, sys, time\n"
            "from rootless.network import helper_client as h\n"
            "res = []\n"
            "for i in range(90):\n"
            "    p = subprocess.Popen(['unshare', '--user', '--map-root-user', '--net']\n"
            "                         + (['sleep', '5'] if i % 5 < 3 else ['true'] if i % 5 == 3 else ['sleep', '0.01']))\n"
            "    time.sleep(0.02)\n"
            "    try:\n"
            "        h.connect(sys.argv[1], p.pid); res.append('ok')\n"
            "    except Exception as e:\n"
            "        res.append(str(e))\n"
            "    p.kill(); p.wait()\n"
            "print(json.dumps(res))\n")
    r = client("rltuser", race, helper.sock)
    assert r.returncode == 0, r.stderr + helper.text()
    answers = json.loads(r.stdout)
    assert answers.count("ok") >= 40, answers  # the sleep 5 ones at least
    assert all(a == "ok" or a.startswith("network helper: ") for a in answers), answers
    assert helper.p.poll() is None, "the helper died: " + helper.text()
    assert ping_time(helper.sock) < 1.0
    for _ in range(100):  # every lease of the dead namespaces is released
        if not leases(helper) and "rlv" not in helper.ip("-o", "link"):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"leases left behind: {leases(helper)}\n{helper.text()}")
    assert "Traceback" not in helper.text()


# --- item 9: ports, quota, thread ids, batched rules ------------------------------------------


def test_a_thread_id_is_refused(helper):
    code = ("import threading, time\n"
            "t = threading.Thread(target=time.sleep, args=(60,), daemon=True); t.start()\n"
            "print(t.native_id, flush=True); time.sleep(60)\n")
    p = subprocess.Popen(as_user("rltuser") + ["unshare", "--user", "--map-root-user", "--net", PY, "-c", code],
                         stdout=subprocess.PIPE, text=True)
    try:
        tid = int(p.stdout.readline())
        assert os.path.exists(f"/proc/{tid}/ns/net") and tid != p.pid
        r = connect(helper, tid)
        assert r.returncode != 0, f"a thread id got a lease (it would never be released): {r.stdout}"
        assert "is a thread of process" in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(helper.state, "leases.json")) or leases(helper) == []
        assert "rlv" not in helper.ip("-o", "link")
    finally:
        p.kill()


def test_host_ports_are_held_quota_and_batched_release(hostns, tmp_path):
    h = Helper2(hostns, tmp_path, "nftables", extra=["--port-quota", "40"])
    c1, c2 = new_netns(as_user("rltuser")), new_netns(as_user("rltuser"))
    host_srv = None
    try:
        h.start()
        # a host service already listening: the claim is refused
        host_srv = subprocess.Popen(["ip", "netns", "exec", hostns, PY, "-c", SERVE_WORD, "0.0.0.0", "21000", "host"])
        time.sleep(0.5)
        r = connect(h, c1.pid, [{"container_port": 80, "host_port": 21000, "host_ip": "", "proto": "tcp"}])
        assert r.returncode != 0 and "Address already in use" in r.stderr, r.stderr
        # a claimed port: a host service started later cannot bind it (its traffic is not hijacked)
        ports = [{"container_port": 80, "host_port": 21001 + i, "host_ip": "", "proto": "tcp"} for i in range(30)]
        r = connect(h, c1.pid, ports)
        assert r.returncode == 0, r.stderr + h.text()
        late = run_in(hostns, PY, "-c", "import socket; s = socket.socket(); s.bind(('0.0.0.0', 21001)); print('bound')")
        assert "bound" not in late.stdout and "Address already in use" in late.stderr, late.stdout + late.stderr
        # the quota: 30 held, 11 more would be 41 > 40
        more = [{"container_port": 80, "host_port": 22001 + i, "host_ip": "", "proto": "tcp"} for i in range(11)]
        r = connect(h, c2.pid, more)
        assert r.returncode != 0 and "quota of 40" in r.stderr, r.stderr
        # releasing 30 ports: one listing and one transaction
        d = client("rltuser", "import sys; from rootless.network import helper_client as h; "
                   f"h.disconnect(sys.argv[1], {c1.pid})", h.sock)
        assert d.returncode == 0, d.stderr
        assert re.search(r"release \S+ \(disconnect\); 60 DNAT rules removed in 2 nftables calls", h.text()), h.text()
        assert "21001" not in run_in(hostns, "nft", "list", "ruleset").stdout
        again = run_in(hostns, PY, "-c", "import socket; s = socket.socket(); s.bind(('0.0.0.0', 21001)); print('bound')")
        assert "bound" in again.stdout, again.stderr
    finally:
        for p in (host_srv, c1, c2):
            if p is not None:
                p.kill()
        h.close()


# --- item 4: `sudo -E rootless helper`, and a .pyz that a user can write -----------------------


def _build_id(pyz):
    with zipfile.ZipFile(pyz) as z:
        return re.search(r'BUILD_ID = "(\w+)"', z.read("__main__.py").decode()).group(1)


def _tamper(tree, marker):
    """Append to every module a line that leaves a mark when it is imported, and by whom."""
    for d, _dirs, files in os.walk(tree):
        for fn in files:
            if fn.endswith(".py"):
                with open(os.path.join(d, fn), "a") as f:
                    f.write(f"\nopen({marker!r}, 'a').write(__name__ + ' uid=%d\\n' % __import__('os').geteuid())\n")


def test_sudo_E_helper_never_runs_code_from_the_users_cache(hostns, tmp_path):
    pyz = os.environ.get("ROOTLESS_TEST_PYZ")
    if not pyz:
        pytest.skip("needs the built .pyz (tests/run)")
    user = pwd.getpwnam("rltuser")
    home = tempfile.mkdtemp(prefix="rlt-home-")
    marker = os.path.join(tempfile.mkdtemp(prefix="rlt-mark-"), "imported")
    os.chmod(os.path.dirname(marker), 0o777)
    os.chown(home, user.pw_uid, user.pw_gid)
    cache = os.path.join(home, ".cache")
    target = os.path.join(cache, "rootless", f"pyz-{_build_id(pyz)}")
    uenv = ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin"]
    c1 = None

    def user_does(*argv):
        r = subprocess.run(as_user("rltuser") + uenv + list(argv), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    # the user prepares a tampered copy where the helper's cache would be...
    user_does("mkdir", "-p", os.path.dirname(target))
    user_does(PY, "-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])", pyz, target + ".evil")
    _tamper(target + ".evil", marker)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", target + ".evil"], check=True)
    user_does("sh", "-c", f"touch {target}.evil/.complete")
    # ...and root starts the helper with the user's environment (sudo -E)
    env = {"HOME": home, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "USER": "rltuser", "SUDO_USER": "rltuser"}
    h = Helper2(hostns, tmp_path, "nftables", argv0=[pyz], env=env)
    try:
        h.start()
        # while it runs, the user swaps whatever is in its cache for the tampered copy
        user_does("sh", "-c", f"mv {target} {target}.root 2>/dev/null; mv {target}.evil {target}")
        assert os.path.isfile(os.path.join(target, "rootless", "network", "helper.py"))
        # requests of every kind, and a container that comes and goes
        c1 = new_netns(as_user("rltuser"))
        r = connect(h, c1.pid, [{"container_port": 80, "host_port": 23000, "host_ip": "", "proto": "tcp"}])
        assert r.returncode == 0, r.stderr + h.text()
        assert connect(h, 1).returncode != 0
        assert connect(h, c1.pid, user="rltnosub").returncode != 0
        imported = open(marker).read() if os.path.exists(marker) else ""
        # root wrote nothing into the user's home (a root-owned cache there is what the user swaps)
        owned = [os.path.join(d, n) for d, ds, fs in os.walk(home) for n in ds + fs
                 if os.lstat(os.path.join(d, n)).st_uid == 0]
        assert imported == "" and owned == [], (f"root imported the user's code: {imported!r}; "
                                                f"root created files in the user's home: {owned[:3]}")
        c1.kill()
        c1.wait()
        for _ in range(50):
            if "release " in h.text():
                break
            time.sleep(0.1)
        assert ping_time(h.sock) < 1.0
        h.stop()
        assert not os.path.exists(marker), "root imported the user's code:\n" + open(marker).read()
    finally:
        if c1 is not None:
            c1.kill()
        h.close()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(os.path.dirname(marker), ignore_errors=True)


@pytest.mark.parametrize("how", ["world-writable", "owned by rltuser", "in rltuser's folder"])
def test_a_pyz_a_user_can_write_is_refused(hostns, tmp_path, how):
    pyz = os.environ.get("ROOTLESS_TEST_PYZ")
    if not pyz:
        pytest.skip("needs the built .pyz (tests/run)")
    user = pwd.getpwnam("rltuser")
    d = tempfile.mkdtemp(prefix="rlt-pyz-")
    try:
        os.chmod(d, 0o755)
        copy = os.path.join(d, "rootless.pyz")
        shutil.copy(pyz, copy)
        os.chmod(copy, 0o755)
        if how == "world-writable":
            os.chmod(copy, 0o757)
        elif how == "owned by rltuser":
            os.chown(copy, user.pw_uid, user.pw_gid)
        else:
            os.chown(d, user.pw_uid, user.pw_gid)
        sock = os.path.join(d, "helper.sock")
        env = {"HOME": "/root", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        try:
            r = subprocess.run(["ip", "netns", "exec", hostns, copy, "helper", "--socket", sock, "--state-dir",
                                str(tmp_path / "state"), "--bip", "172.31.0.1/16"],
                               env=env, capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the helper ran from a .pyz {how}")
        assert r.returncode == 125, r
        assert "error: run the network helper from " in r.stderr and "a user could change the code" in r.stderr
        assert "hint: install rootless where only root can write" in r.stderr
        assert not os.path.exists(sock)
    finally:
        shutil.rmtree(d, ignore_errors=True)
