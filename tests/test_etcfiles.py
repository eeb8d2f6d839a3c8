"""rootless.etcfiles: the one /etc/hosts and /etc/resolv.conf generator, for every network mode."""

from __future__ import annotations

import pytest

from rootless import etcfiles
from rootless.errors import RootlessError, UsageError


def test_hosts_none_takes_docker_add_host_forms():
    text = etcfiles.hosts_for("none", "myname", ["db=10.0.0.5", "cache:10.1.2.3", "v6:[::1]", "v6b=[fd00::7]"])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.0.0.5\tdb" in lines and "10.1.2.3\tcache" in lines
    assert "::1\tv6" in lines and "fd00::7\tv6b" in lines and "[" not in text
    assert lines[-1] == "127.0.1.1\tmyname"  # docker's order: the --add-host lines, then the container


def test_hosts_none_refuses_host_gateway_rather_than_writing_it():
    with pytest.raises(UsageError, match="host-gateway") as e:
        etcfiles.hosts_for("none", "web", ["gw:host-gateway"])
    assert e.value.hint


def test_hosts_host_network_starts_from_the_hosts_file(tmp_path):
    host = tmp_path / "hosts"
    host.write_text("127.0.0.1 myhost")
    assert etcfiles.hosts_for("host", "x", host_path=str(host)) == "127.0.0.1 myhost\n"
    text = etcfiles.hosts_for("host", "x", ["gw=host-gateway", "db:10.0.0.5"], host_path=str(host))
    assert text == "127.0.0.1 myhost\n127.0.0.1\tgw\n10.0.0.5\tdb\n"
    assert "host-gateway" not in text


def test_add_host_bad_forms():
    for bad in ("nocolon", "x:999.1.1.1", "bad name:1.2.3.4", "db:"):
        with pytest.raises(RootlessError, match="--add-host"):
            etcfiles.parse_add_host(bad)


def test_resolv_per_mode(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("# managed\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch corp\n")
    h = etcfiles.read_host_resolv(str(host))
    assert etcfiles.make_resolv("host", h) == host.read_text()  # docker copies it for --network host
    assert etcfiles.make_resolv("none", h) == "search corp\nnameserver 10.0.0.1\n"
    assert etcfiles.make_resolv("none", h, dns=["1.1.1.1"], dns_search=["a.b"], dns_opts=["ndots:2"]) == \
        "search a.b\nnameserver 1.1.1.1\noptions ndots:2\n"
    assert etcfiles.make_resolv("host", h, dns=["9.9.9.9"]) == "search corp\nnameserver 9.9.9.9\n"
    assert etcfiles.make_resolv("none", etcfiles.read_host_resolv(str(tmp_path / "absent"))) == \
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
