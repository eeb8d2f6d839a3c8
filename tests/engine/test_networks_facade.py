"""engine.networks' facade (NetworkSpec, create/list/inspect/remove/prune) without containers;
connect/disconnect need running containers: tests/commands/test_network.py covers them."""

from __future__ import annotations

import pytest

from fixtures.objects_archive import config
from rootless.engine import networks
from rootless.errors import RootlessError, UsageError

pytestmark = pytest.mark.nosubuid


def test_spec_is_checked_once():
    s = networks.NetworkSpec.from_cli("net1", "bridge", "10.99.0.0/24", "", True, ["a=b"])
    assert s == networks.NetworkSpec("net1", "bridge", "10.99.0.0/24", "", True, {"a": "b"})
    with pytest.raises(UsageError, match="driver `overlay`: not supported"):
        networks.NetworkSpec.make("net1", driver="overlay")
    with pytest.raises(UsageError, match="the key is empty"):
        networks.NetworkSpec.from_cli("net1", "bridge", "", "", False, ["=x"])


def test_create_list_inspect_remove_prune(tmp_path):
    cfg = config(tmp_path)
    predefined = ["slirp4netns", "host", "none"]
    assert [n["Name"] for n in networks.list_networks(cfg)] == predefined
    info = networks.create(cfg, networks.NetworkSpec.make("net1", subnet="10.99.0.0/24", labels={"team": "a"}))
    assert info["Name"] == "net1" and len(info["Id"]) == 64 and info["Labels"] == {"team": "a"}
    assert info["IPAM"]["Config"] == [{"Subnet": "10.99.0.0/24", "Gateway": "10.99.0.1"}]
    with pytest.raises(RootlessError):
        networks.create(cfg, networks.NetworkSpec.make("net2", subnet="10.99.0.0/25"))  # overlaps net1
    networks.create(cfg, networks.NetworkSpec.make("net2"))

    assert [n["Name"] for n in networks.list_networks(cfg)] == predefined + ["net1", "net2"]
    assert [n["Name"] for n in networks.list_networks(cfg, ["label=team"])] == ["net1"]
    assert [n["Name"] for n in networks.list_networks(cfg, ["driver=bridge", "name=net"])] == ["net1", "net2"]
    assert [n["Name"] for n in networks.list_networks(cfg, ["id=" + info["Id"][:8]])] == ["net1"]
    with pytest.raises(UsageError, match="unknown filter `colour`"):
        networks.list_networks(cfg, ["colour=red"])
    with pytest.raises(UsageError, match="expected key=value"):
        networks.list_networks(cfg, ["name"])

    assert networks.inspect(cfg, "net1") == info
    assert networks.inspect(cfg, info["Id"][:12])["Name"] == "net1"
    assert networks.inspect(cfg, "host")["Driver"] == "host"
    with pytest.raises(RootlessError, match="no such network"):
        networks.inspect(cfg, "nosuch")

    with pytest.raises(RootlessError, match="predefined network") as e:
        networks.remove(cfg, "bridge")
    assert e.value.exit_code == 1
    assert networks.remove(cfg, "nosuch", force=True) is None
    with pytest.raises(RootlessError):
        networks.remove(cfg, "nosuch")
    assert networks.remove(cfg, "net1") == "net1"
    assert networks.prune(cfg) == ["net2"]
    assert [n["Name"] for n in networks.list_networks(cfg)] == predefined
