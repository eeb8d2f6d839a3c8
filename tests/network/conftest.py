"""Fixtures of the network tests (helpers in netutil.py)."""

from __future__ import annotations

import subprocess

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

