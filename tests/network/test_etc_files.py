"""/etc/resolv.conf and /etc/hosts for containers, and --network parsing (pure functions)."""

from __future__ import annotations

import pytest

from rootless import network
from rootless.config import Config
from rootless.errors import UsageError
from rootless.network import hosts, resolv

pytestmark = pytest.mark.nosubuid

HOST = "# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\noptions edns0 trust-ad\n"


def test_parse_host_resolv():
    h = resolv.parse(HOST)
    assert h.nameservers == ["127.0.0.53", "192.0.2.53", "fe80::1"]
    assert h.search == ["corp.example"] and h.options == ["edns0", "trust-ad"]


def test_slirp_uses_its_forwarder_first_and_drops_loopback():
    text = resolv.make("slirp4netns", resolv.parse(HOST))
    assert text == "search corp.example\nnameserver 10.0.2.3\nnameserver 192.0.2.53\noptions edns0 trust-ad\n"
    assert "nameserver fd00::3" in resolv.make("slirp4netns", resolv.parse(HOST), ipv6=True)


def test_host_mode_keeps_loopback_and_bridge_falls_back():
    assert "nameserver 127.0.0.53" in resolv.make("host", resolv.parse(HOST))
    only_loop = resolv.parse("nameserver 127.0.0.53\n")
    assert resolv.make("helper", only_loop) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_flags_and_config_override(tmp_path):
    f = tmp_path / "resolv.conf"
    f.write_text(HOST)
    cfg = Config(dns=["1.1.1.1"], dns_search=["a.example"], dns_opts=["ndots:2"])
    mode = network.parse_mode("slirp4netns")
    assert network.resolv_conf(mode, cfg, host_path=str(f)) == "search a.example\nnameserver 1.1.1.1\noptions ndots:2\n"
    assert network.resolv_conf(mode, cfg, dns=["9.9.9.9"], dns_search=["."], host_path=str(f)) == \
        "nameserver 9.9.9.9\noptions ndots:2\n"
    with pytest.raises(UsageError):
        network.resolv_conf(mode, cfg, dns=["not-an-ip"], host_path=str(f))


def test_hosts_file():
    mode = network.parse_mode("slirp4netns")
    text = network.etc_hosts(mode, "web", add_hosts=["db:192.0.2.7", "gw=host-gateway", "v6:[::1]"])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "192.0.2.7\tdb" in lines and "10.0.2.2\tgw" in lines and "::1\tv6" in lines
    assert "10.0.2.100\tweb" in lines
    assert lines[-1] == "10.0.2.2\thost.containers.internal host.docker.internal"
    none = network.etc_hosts(network.parse_mode("none"), "web")
    assert "127.0.1.1\tweb" in none and "host.docker.internal" not in none
    with pytest.raises(UsageError) as e:
        network.etc_hosts(network.parse_mode("none"), "web", add_hosts=["gw:host-gateway"])
    assert "host-gateway" in e.value.message
    for bad in ("nocolon", "x:999.1.1.1", "bad name:1.2.3.4"):
        with pytest.raises(UsageError):
            hosts.parse_add_host(bad)


def test_write_in_place_keeps_the_inode(tmp_path):
    p = tmp_path / "hosts"
    p.write_text("old old old\n")
    ino = p.stat().st_ino
    hosts.write_in_place(str(p), "new\n")
    assert p.read_text() == "new\n" and p.stat().st_ino == ino


def test_parse_mode():
    m = network.parse_mode("slirp4netns:allow_host_loopback=true,enable_ipv6=true,mtu=1500,port_handler=rootlesskit")
    assert (m.kind, m.allow_host_loopback, m.enable_ipv6, m.mtu, m.port_driver) == ("slirp4netns", True, True, 1500, "builtin")
    assert network.parse_mode("").kind == "slirp4netns" and network.parse_mode("bridge").kind == "slirp4netns"
    c = network.parse_mode("container:abc")
    assert c.kind == "container" and c.container == "abc" and str(c) == "container:abc"
    for bad in ("nosuch", "container:", "host:x=1", "slirp4netns:mtu=10", "slirp4netns:foo=1", "slirp4netns:bare"):
        with pytest.raises(UsageError):
            network.parse_mode(bad)
