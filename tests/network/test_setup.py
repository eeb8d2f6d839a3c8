"""network.setup(): published ports through both drivers, errors, teardown from another process."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest
from netutil import PY, http_get, nsenter

from enginehelp import alive
from rootless import network
from rootless.errors import RootlessError
from rootless.network import NetHandle, PortSpec, netns, proxy


@pytest.mark.parametrize("driver", ["builtin", "slirp4netns"])
def test_published_port_reaches_a_server_inside(netns_pid, tmp_path, httpd, driver):
    mode = network.parse_mode(f"slirp4netns:port_handler={driver}")
    ports = network.parse_ports(["127.0.0.1::80"])
    h = network.setup(mode, netns_pid, ports, state_dir=str(tmp_path / "net"))
    try:
        assert h.port_driver == driver
        [p] = h.ports
        assert p.host_port > 0 and p.host_ip == "127.0.0.1"
        assert h.port_lines() == [f"80/tcp -> 127.0.0.1:{p.host_port}"]
        httpd(80)
        assert http_get(f"http://127.0.0.1:{p.host_port}/") == b"hello from the netns\n"
        # the handle survives a trip through JSON, and another process can tear it down
        text = h.to_json()
        assert NetHandle.from_json(text) == h
        code = "import sys; from rootless.network import NetHandle; NetHandle.from_json(sys.argv[1]).teardown()"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        subprocess.run([sys.executable, "-c", code, text], check=True, env=env, timeout=20)
    finally:
        h.teardown()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and (alive(h.slirp.pid) or (h.proxy and alive(h.proxy.pid))):
        time.sleep(0.05)
    assert not alive(h.slirp.pid)
    assert h.proxy is None or not alive(h.proxy.pid)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p.host_port), timeout=2)


@pytest.mark.parametrize("driver", ["builtin", "slirp4netns"])
def test_busy_port_names_the_port(netns_pid, tmp_path, driver):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    mode = network.parse_mode(f"slirp4netns:port_handler={driver}")
    with pytest.raises(RootlessError) as e:
        network.setup(mode, netns_pid, [PortSpec(80, port, "127.0.0.1")], state_dir=str(tmp_path / "n"))
    assert f"127.0.0.1:{port}/tcp" in e.value.message and "already in use" in e.value.message
    s.close()


@pytest.mark.skipif(os.getuid() == 0, reason="root may bind privileged ports")
def test_privileged_port_hints_at_the_sysctl(netns_pid, tmp_path):
    with pytest.raises(RootlessError) as e:
        network.setup(network.parse_mode("slirp4netns"), netns_pid, [PortSpec(80, 80, "127.0.0.1")],
                      state_dir=str(tmp_path / "n"))
    assert "ports below" in e.value.message and "net.ipv4.ip_unprivileged_port_start=80" in e.value.hint


def test_none_mode_brings_up_lo(netns_pid, tmp_path):
    def lo_up():
        out = subprocess.run(nsenter(netns_pid, ["ip", "-o", "link", "show", "lo"]), capture_output=True, text=True).stdout
        return ",UP" in out

    assert not lo_up()
    h = network.setup(network.parse_mode("none"), netns_pid, state_dir=str(tmp_path / "n"))
    assert lo_up() and h.mode == "none" and h.slirp is None
    assert h.teardown() == []


ECHO_UDP = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5353))
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(data.upper(), addr)
"""

BIG = """
import hashlib, socket, sys
data = bytes(range(256)) * (20 * 4096)   # 20 MiB
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 9000)); srv.listen(8)
while True:
    c, _ = srv.accept()
    got = b""
    while True:            # read the request until the client half-closes
        b = c.recv(65536)
        if not b:
            break
        got += b
    c.sendall(hashlib.sha256(got).hexdigest().encode() + b"\\n" + data)
    c.close()
"""


@pytest.mark.parametrize("splice", [True, False], ids=["splice", "copy-loop"])
def test_builtin_proxy_moves_big_streams_half_close_and_udp(netns_pid, tmp_path, monkeypatch, splice):
    if splice and not proxy.HAVE_SPLICE:
        pytest.skip("os.splice needs Python 3.10")
    monkeypatch.setattr(proxy, "HAVE_SPLICE", splice)  # the forked proxy inherits it
    netns.bring_up_loopback(netns_pid)
    big = subprocess.Popen(nsenter(netns_pid, [PY, "-c", BIG]))
    echo = subprocess.Popen(nsenter(netns_pid, [PY, "-c", ECHO_UDP]))
    try:
        px = proxy.start(netns_pid, [PortSpec(9000, 0, "127.0.0.1"), PortSpec(5353, 0, "127.0.0.1", "udp")],
                         log_path=str(tmp_path / "proxy.log"))
        tcp_port, udp_port = px.ports[0].host_port, px.ports[1].host_port
        payload = os.urandom(3 * 1024 * 1024)
        for _ in range(50):
            c = socket.create_connection(("127.0.0.1", tcp_port))
            chunks = []
            try:
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)  # half-close: the server answers after our EOF
                while True:
                    b = c.recv(1 << 20)
                    if not b:
                        break
                    chunks.append(b)
            except ConnectionError:
                chunks = []
            c.close()
            if chunks:
                break
            time.sleep(0.1)  # the server inside is not listening yet: the proxy closed us
        reply = b"".join(chunks)
        head, _, body = reply.partition(b"\n")
        assert head.decode() == hashlib.sha256(payload).hexdigest()
        assert body == bytes(range(256)) * (20 * 4096)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(0.5)
        for _ in range(20):
            u.sendto(b"ping", ("127.0.0.1", udp_port))
            try:
                assert u.recvfrom(100)[0] == b"PING"
                break
            except socket.timeout:
                continue
        else:
            raise AssertionError("no UDP answer through the proxy")
        proxy.stop(px)
        assert not alive(px.pid)
    finally:
        big.kill()
        echo.kill()
        big.wait()
        echo.wait()


def test_proxy_exits_when_the_container_does(tmp_path):
    from netutil import new_netns

    ns = new_netns()
    px = proxy.start(ns.pid, [PortSpec(80, 0, "127.0.0.1")])
    ns.kill()
    ns.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if os.waitpid(px.pid, os.WNOHANG)[0]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the proxy outlived the container")


def test_proxy_for_a_namespace_we_cannot_enter_fails_clearly(tmp_path):
    if os.getuid() == 0:
        pytest.skip("root can enter every namespace")
    with pytest.raises(RootlessError) as e:
        proxy.start(1, [PortSpec(80, 0, "127.0.0.1")])
    assert "start the port proxy for pid 1" in e.value.message


def test_helper_mode_falls_back_to_slirp4netns_with_a_note(netns_pid, tmp_path):
    from rootless.config import Config

    cfg = Config(helper_socket=str(tmp_path / "no-helper.sock"))
    h = network.setup("helper", netns_pid, config=cfg, state_dir=str(tmp_path / "n"))
    try:
        assert h.mode == "slirp4netns" and h.slirp is not None and h.address == "10.0.2.100"
        assert "not running at" in h.notes[0] and "rootless helper" in h.notes[0]
    finally:
        h.teardown()
    info = network.info(cfg)
    assert info["port driver"].startswith("builtin") and info["helper"].startswith("not running")


def test_container_mode_cannot_publish(netns_pid, tmp_path):
    with pytest.raises(RootlessError) as e:
        network.setup("container:abc", netns_pid, [PortSpec(80)], state_dir=str(tmp_path / "n"))
    assert "cannot publish" in e.value.message
    assert network.setup("host", netns_pid, state_dir=str(tmp_path / "n")).to_json()


def test_proxy_from_a_threaded_caller_is_re_executed(netns_pid, tmp_path, httpd):
    """The API server has threads: fork is unsafe there, so the proxy starts as a new interpreter."""
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        netns.bring_up_loopback(netns_pid)
        px = proxy.start(netns_pid, [PortSpec(80, 0, "127.0.0.1")])
        httpd(80)
        assert http_get(f"http://127.0.0.1:{px.ports[0].host_port}/") == b"hello from the netns\n"
        with open(f"/proc/{px.pid}/cmdline", "rb") as f:
            assert b"-c" in f.read()  # an interpreter started by runtime.userns, not a fork of us
        proxy.stop(px)
        assert not alive(px.pid)
    finally:
        stop.set()
