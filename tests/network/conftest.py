"""Fixtures of the network tests (helpers in netutil.py)."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from netutil import new_netns, nsenter


@pytest.fixture
def netns_pid():
    p = new_netns()
    yield p.pid
    p.kill()
    p.wait()


@pytest.fixture
def webroot(tmp_path):
    d = tmp_path / "www"
    d.mkdir()
    (d / "index.html").write_text("hello from the netns\n")
    return str(d)


@pytest.fixture
def httpd(netns_pid, webroot):
    """busybox httpd on port 80 of every address inside the namespace (lo must be up first)."""
    procs = []

    def start(port: int = 80) -> subprocess.Popen:
        p = subprocess.Popen(nsenter(netns_pid, ["busybox", "httpd", "-f", "-p", str(port), "-h", webroot]))
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()



@pytest.fixture
def hostns(tmp_path):
    """"The host" (where the helper runs) and "ext", a machine on its LAN: 192.168.77.1 <-> .2."""
    name = f"rlt-{uuid.uuid4().hex[:8]}"
    ext = name + "-ext"
    for ns in (name, ext):
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "link", "add", "hext0", "netns", name, "type", "veth", "peer", "name", "ext0", "netns", ext],
                   check=True)
    for ns, dev, addr in ((name, "hext0", "192.168.77.1/24"), (ext, "ext0", "192.168.77.2/24")):
        subprocess.run(["ip", "netns", "exec", ns, "ip", "addr", "add", addr, "dev", dev], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", dev, "up"], check=True)
    yield name
    for ns in (ext, name):
        subprocess.run(["ip", "netns", "del", ns], check=False)
