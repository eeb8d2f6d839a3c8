"""-p / -P parsing, and binding errors (pure, plus real binds on loopback)."""

from __future__ import annotations

import socket

import pytest

from rootless import network
from rootless.errors import UsageError
from rootless.network import ports
from rootless.network.ports import PortSpec

pytestmark = pytest.mark.nosubuid


@pytest.mark.parametrize("text,want", [
    ("80", [PortSpec(80)]),
    ("8080:80", [PortSpec(80, 8080)]),
    ("127.0.0.1:8080:80/udp", [PortSpec(80, 8080, "127.0.0.1", "udp")]),
    ("127.0.0.1::80", [PortSpec(80, 0, "127.0.0.1")]),
    ("0.0.0.0:8080:80", [PortSpec(80, 8080)]),
    ("[::1]:8080:80/tcp", [PortSpec(80, 8080, "::1")]),
    ("8000-8002:80-82", [PortSpec(80, 8000), PortSpec(81, 8001), PortSpec(82, 8002)]),
    ("53/UDP", [PortSpec(53, 0, "", "udp")]),
])
def test_parse_publish(text, want):
    assert ports.parse_publish(text) == want


@pytest.mark.parametrize("text,words", [
    ("", "missing"), ("8080:", "missing"), ("x:80", "not a number"), ("70000:80", "out of range"),
    ("80/sctp", "tcp or udp"), ("1.2.3:80:80", "not an IP"), ("8000-8010:80", "host range has 11"),
    ("a:b:c:d", "too many"), ("[::1:80:80", "unclosed"), ("90-80:90-80", "out of range"),
])
def test_parse_publish_errors(text, words):
    with pytest.raises(UsageError) as e:
        ports.parse_publish(text)
    assert words in e.value.message and e.value.hint


def test_duplicate_host_port_and_publish_all():
    with pytest.raises(UsageError) as e:
        ports.parse_publish_all(["8080:80", "8080:81"])
    assert "already published" in e.value.message
    got = network.parse_ports(["8080:80"], publish_all=True, exposed=["80/tcp", "53/udp", "9000-9001", "132/sctp"])
    assert got == [PortSpec(80, 8080), PortSpec(53, 0, "", "udp"), PortSpec(9000), PortSpec(9001)]
    assert network.parse_ports(["80"], exposed=["443"]) == [PortSpec(80)]


def test_str_and_dict_round_trip():
    p = PortSpec(80, 8080, "127.0.0.1", "tcp")
    assert str(p) == "80/tcp -> 127.0.0.1:8080"
    assert str(PortSpec(53, 5353, "", "udp")) == "53/udp -> 0.0.0.0:5353"
    assert str(PortSpec(80, 1, "::1")) == "80/tcp -> [::1]:1"
    assert PortSpec.from_dict(p.to_dict()) == p
    with pytest.raises(UsageError):
        PortSpec.from_dict({"container_port": 0})


def test_bind_picks_free_ports_and_names_a_busy_one():
    [(p, s)] = ports.bind_all([PortSpec(80, 0, "127.0.0.1")])
    try:
        assert p.host_port == s.getsockname()[1] > 0
        with pytest.raises(Exception) as e:
            ports.reserve([PortSpec(81, p.host_port, "127.0.0.1")])
        assert e.value.message == f"publish port `127.0.0.1:{p.host_port}/tcp`: address already in use"
        assert f"port {p.host_port}" in e.value.hint
    finally:
        s.close()
    with pytest.raises(Exception) as e:
        ports.reserve([PortSpec(80, 8080, "192.0.2.1")])
    assert "not an address of this host" in e.value.message


def test_privileged_port_message_uses_the_sysctl(tmp_path):
    (tmp_path / "sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "sys/net/ipv4/ip_unprivileged_port_start").write_text("1024\n")
    err = ports.bind_error(PortSpec(80, 80), 80, PermissionError(13, "Permission denied"), proc=str(tmp_path))
    assert err.message == "publish port `0.0.0.0:80/tcp`: permission denied: ports below 1024 are privileged"
    assert "sysctl net.ipv4.ip_unprivileged_port_start=80" in err.hint


def test_udp_bind():
    [(p, s)] = ports.bind_all([PortSpec(53, 0, "127.0.0.1", "udp")])
    assert s.type == socket.SOCK_DGRAM and p.host_port > 0
    s.close()
