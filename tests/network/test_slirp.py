"""slirp4netns for a namespace: configured, its API socket, host loopback, failures, teardown."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time

import pytest
from netutil import PY, http_get, nsenter

from enginehelp import alive
from rootless import network
from rootless.errors import RootlessError, ToolError
from rootless.network import NetworkMode, PortSpec, slirp


def test_start_configures_tap0_and_the_api_socket_forwards(netns_pid, tmp_path, httpd):
    s = slirp.start(netns_pid, str(tmp_path))
    try:
        out = subprocess.run(nsenter(netns_pid, ["ip", "-o", "-4", "addr"]), capture_output=True, text=True).stdout
        assert "tap0" in out and "10.0.2.100/24" in out and "127.0.0.1" in out  # lo is up too
        assert slirp.list_hostfwd(s.api_socket) == []
        httpd(80)
        port = network.ports.reserve([PortSpec(80, 0, "127.0.0.1")])[0].host_port
        fid = slirp.add_hostfwd(s.api_socket, "tcp", port, 80, "127.0.0.1")
        [entry] = slirp.list_hostfwd(s.api_socket)
        assert entry["id"] == fid and entry["host_port"] == port and entry["guest_port"] == 80
        assert http_get(f"http://127.0.0.1:{port}/") == b"hello from the netns\n"
        slirp.remove_hostfwd(s.api_socket, fid)
        assert slirp.list_hostfwd(s.api_socket) == []
    finally:
        slirp.stop(s)
    assert not os.path.exists(s.api_socket)
    deadline = time.monotonic() + 5  # killed, not waited for: its namespaces take a moment to go
    while alive(s.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(s.pid)


def test_slirp4netns_goes_with_the_container(tmp_path):
    from netutil import new_netns

    ns = new_netns()
    s = slirp.start(ns.pid, str(tmp_path))
    ns.kill()
    ns.wait()
    deadline = time.monotonic() + 5
    while alive(s.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(s.pid)
    slirp.stop(s)


def test_long_state_dir_paths_work(netns_pid, tmp_path):
    d = tmp_path / ("x" * 100)
    d.mkdir()
    s = slirp.start(netns_pid, str(d))
    try:
        assert len(s.api_socket) > 108
        assert slirp.list_hostfwd(s.api_socket) == []
    finally:
        slirp.stop(s)


def test_failure_quotes_slirp4netns_stderr(tmp_path):
    with pytest.raises(ToolError) as e:
        slirp.start(2**22 - 1, str(tmp_path), slirp.SlirpOptions(timeout=5))
    assert "start `slirp4netns` for pid" in e.value.message
    assert "exit status" in e.value.message and e.value.hint


def test_argv_follows_the_options():
    feats = {"enable-sandbox": True, "enable-seccomp": False}
    a = slirp.argv(42, slirp.SlirpOptions(allow_host_loopback=True, enable_ipv6=True, mtu=1500), "/s", 7, feats)
    assert a[:2] == ["slirp4netns", "--configure"] and "--mtu=1500" in a and "--ready-fd=7" in a
    assert "--disable-host-loopback" not in a and "--enable-ipv6" in a
    assert "--enable-sandbox" in a and "--enable-seccomp" not in a
    assert a[-2:] == ["42", "tap0"]
    assert "--disable-host-loopback" in slirp.argv(42, slirp.SlirpOptions(), "/s", 7, feats)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"host server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("allowed", [False, True])
def test_host_loopback_reached_through_10_0_2_2_only_when_allowed(netns_pid, tmp_path, allowed):
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    mode = network.parse_mode(f"slirp4netns:allow_host_loopback={'true' if allowed else 'false'}")
    h = network.setup(mode, netns_pid, state_dir=str(tmp_path / "net"))
    try:
        get = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())"
        r = subprocess.run(nsenter(netns_pid, [PY, "-c", get, f"http://10.0.2.2:{srv.server_port}/"]),
                           capture_output=True, text=True, timeout=20)
        if allowed:
            assert r.returncode == 0 and r.stdout == "host server\n", r.stderr
        else:
            assert r.returncode != 0 and "host server" not in r.stdout
    finally:
        h.teardown()
        srv.shutdown()
    assert not alive(h.slirp.pid)


def test_errors_are_rootless_errors(netns_pid, tmp_path):
    with pytest.raises(RootlessError):
        slirp.api_call(str(tmp_path / "nosuch.sock"), {"execute": "list_hostfwd"})
    assert isinstance(NetworkMode("slirp4netns"), NetworkMode)
