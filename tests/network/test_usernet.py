"""network/usernet.py at its unit seams: definitions, the allocator's records, the hosts block.

The namespaces themselves are tested end to end in tests/commands/test_network_run.py.
"""

from __future__ import annotations

import json
import os

import pytest

from rootless import network
from rootless.errors import RootlessError, UsageError
from rootless.network import usernet

pytestmark = pytest.mark.nosubuid


def test_definitions_are_stored_atomically_and_subnets_do_not_overlap(tmp_path):
    root = str(tmp_path)
    a = usernet.create(root, "a")
    b = usernet.create(root, "b", labels={"k": "v"})
    c = usernet.create(root, "c", subnet="10.89.2.7/24", gateway="10.89.2.9", internal=True)
    assert (a["Subnet"], a["Gateway"]) == ("10.89.0.0/24", "10.89.0.1")
    assert b["Subnet"] == "10.89.1.0/24"
    assert (c["Subnet"], c["Gateway"], c["Internal"]) == ("10.89.2.0/24", "10.89.2.9", True)
    assert usernet.create(root, "d")["Subnet"] == "10.89.3.0/24"
    files = sorted(os.listdir(os.path.join(root, "networks")))
    assert files == sorted([".lock"] + [n["Id"] + ".json" for n in (a, b, c, usernet.find(root, "d"))])
    assert usernet.find(root, a["Id"][:6])["Name"] == "a" and usernet.find(root, "nosuch") is None
    with pytest.raises(RootlessError, match="overlaps network `a`"):
        usernet.create(root, "e", subnet="10.89.0.0/16")
    with pytest.raises(UsageError):
        usernet.create(root, "default")


def test_parse_mode_knows_user_networks_only_with_a_data_root(tmp_path):
    usernet.create(str(tmp_path), "mynet")
    m = network.parse_mode("mynet", data_root=str(tmp_path))
    assert (m.kind, m.network, str(m)) == ("user", "mynet", "mynet")
    with pytest.raises(UsageError, match="unknown network mode `mynet`"):
        network.parse_mode("mynet")
    with pytest.raises(UsageError, match="unknown network mode `user`"):
        network.parse_mode("user", data_root=str(tmp_path))
    assert network.parse_mode("slirp4netns", data_root=str(tmp_path)).kind == "slirp4netns"
    assert "nameserver 10.0.2.3" in network.resolv_conf(m, None, host_path=str(tmp_path / "none"))


def test_stale_attachments_are_not_live(tmp_path):
    net = usernet.create(str(tmp_path), "mynet")
    me = os.getpid()
    from rootless.runtime import proc_start_time

    net["Containers"] = {
        "a" * 64: {"Name": "live", "IPv4Address": "10.89.0.2/24", "Pid": me, "StartTime": proc_start_time(me)},
        "b" * 64: {"Name": "reused", "IPv4Address": "10.89.0.3/24", "Pid": me, "StartTime": 1},
        "c" * 64: {"Name": "gone", "IPv4Address": "10.89.0.4/24", "Pid": 0, "StartTime": None},
    }
    usernet.save(str(tmp_path), net)
    live = usernet.live_containers(usernet.get(str(tmp_path), "mynet"))
    assert [a["Name"] for a in live.values()] == ["live"]
    info = usernet.inspect_dict(usernet.get(str(tmp_path), "mynet"))
    assert info["Containers"] == {"a" * 64: {"Name": "live", "EndpointID": "", "MacAddress": "",
                                            "IPv4Address": "10.89.0.2/24", "IPv6Address": ""}}
    with pytest.raises(RootlessError, match="containers are attached to it: `live`"):
        usernet.remove(str(tmp_path), str(tmp_path / "run"), "mynet")


def test_hosts_block_is_rewritten_in_place(tmp_path):
    d = tmp_path / "containers" / ("c" * 64)
    d.mkdir(parents=True)
    p = d / "hosts"
    p.write_text("127.0.0.1\tlocalhost\n127.0.1.1\tabc\n10.0.0.9\textra\n")
    ino = p.stat().st_ino
    usernet._write_block(str(tmp_path), str(p), ["10.89.0.2\tabc web", "10.89.0.3\tdb 0123456789ab"])
    text = p.read_text()
    assert text == ("127.0.0.1\tlocalhost\n10.0.0.9\textra\n" + usernet.BEGIN + "\n10.89.0.2\tabc web\n"
                    "10.89.0.3\tdb 0123456789ab\n" + usernet.END + "\n")
    usernet._write_block(str(tmp_path), str(p), ["10.89.0.2\tabc web"])
    assert p.read_text().count("10.89.0.3") == 0 and p.stat().st_ino == ino
    usernet._write_block(str(tmp_path), str(p), [])
    assert p.read_text() == "127.0.0.1\tlocalhost\n10.0.0.9\textra\n"
    # a path from a network record that is not a container's hosts file is left alone (issue 11)
    other = tmp_path / "hosts"
    other.write_text("mine\n")
    usernet._write_block(str(tmp_path), str(other), ["10.89.0.2\tabc web"])
    assert other.read_text() == "mine\n"


def test_handle_round_trip_keeps_the_user_network_fields():
    h = network.NetHandle("user", address="10.89.0.2", gateway="10.89.0.1", data_root="/d", exec_root="/e",
                          container_id="f" * 64, container_pid=7)
    back = network.NetHandle.from_json(h.to_json())
    assert back == h
    assert json.loads(h.to_json())["container_id"] == "f" * 64


def test_ip_and_nft_run_in_the_namespace_without_sbin_on_path(netns_pid, monkeypatch):
    """A normal user's PATH has no /usr/sbin: nsenter must be handed nft's and ip's full paths."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    usernet._run_ip(netns_pid, "link set lo up\n", "set lo up")
    assert usernet._has_link(netns_pid, "lo")
    usernet._firewall(netns_pid, [])  # nft -f - through nsenter


def test_tools_run_through_a_launcher_finds_sbin_tools(monkeypatch):
    from rootless import tools

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    r = tools.run(["ip", "-V"], through=["env"])
    assert r.returncode == 0 and b"ip" in r.stdout + r.stderr
    assert r.argv[1].startswith("/") and r.argv[1].endswith("/ip")
