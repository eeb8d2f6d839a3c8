"""`rootless network` create/ls/inspect/rm/prune, without containers (see test_network_run.py)."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.nosubuid


def test_create_ls_inspect_rm(rl):
    nid = rl.ok("network", "create", "--label", "team=a", "mynet").stdout.strip()
    assert len(nid) == 64
    other = rl.ok("network", "create", "--subnet", "10.90.0.0/24", "--gateway", "10.90.0.254", "--internal", "inner")
    ls = rl.ok("network", "ls").stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = {ln.split()[1]: ln.split() for ln in ls[1:]}
    assert rows["mynet"] == [nid[:12], "mynet", "bridge", "local"]
    assert rows["slirp4netns"][2] == "slirp4netns" and rows["host"][2] == "host" and rows["none"][2] == "null"
    assert rl.ok("network", "ls", "-q", "--filter", "name=myn").stdout == nid[:12] + "\n"
    assert rl.ok("network", "ls", "--format", "{{.Name}} {{.Driver}}", "-f", "label=team=a").stdout == "mynet bridge\n"
    info = json.loads(rl.ok("network", "inspect", "mynet", "inner").stdout)
    assert info[0]["Name"] == "mynet" and info[0]["Id"] == nid and info[0]["Driver"] == "bridge"
    assert info[0]["IPAM"]["Config"] == [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]
    assert info[0]["Labels"] == {"team": "a"} and info[0]["Internal"] is False and info[0]["Containers"] == {}
    assert info[1]["IPAM"]["Config"] == [{"Subnet": "10.90.0.0/24", "Gateway": "10.90.0.254"}] and info[1]["Internal"]
    assert rl.ok("network", "inspect", "-f", "{{.Name}}", nid[:12]).stdout == "mynet\n"
    stored = os.listdir(os.path.join(rl.data_root, "networks"))
    assert nid + ".json" in stored
    # a second network gets the next free subnet; a clash is refused
    assert json.loads(rl.ok("network", "inspect", other.stdout.strip()).stdout)[0]["Name"] == "inner"
    r = rl("network", "create", "--subnet", "10.89.0.128/25", "clash")
    assert r.returncode != 0 and "overlaps network `mynet`" in r.stderr and "hint:" in r.stderr
    r = rl("network", "create", "mynet")
    assert r.returncode != 0 and "exists already" in r.stderr
    assert rl.ok("network", "rm", "mynet").stdout == "mynet\n"
    assert rl.ok("network", "prune", "-f").stdout == "Deleted Networks:\ninner\n\n"
    assert [ln.split()[1] for ln in rl.ok("network", "ls").stdout.splitlines()[1:]] == ["slirp4netns", "host", "none"]


@pytest.mark.parametrize("args, text", [
    (["create", "host"], "predefined network"),
    (["create", "bad name"], "invalid name"),
    (["create", "--subnet", "10.0.2.0/24", "x"], "overlaps slirp4netns"),
    (["create", "--subnet", "nope", "x"], "not an IPv4 subnet"),
    (["create", "--subnet", "10.91.0.0/24", "--gateway", "10.92.0.1", "x"], "not a host address"),
    (["rm", "nosuch"], "no such network"),
    (["rm", "host"], "predefined network"),
    (["inspect", "nosuch"], "no such network"),
    (["connect", "nosuch", "c"], "no such network"),
])
def test_errors(rl, args, text):
    r = rl("network", *args)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert text in r.stderr, r


def test_unknown_name_is_still_an_unknown_mode(rl):
    r = rl("create", "--network", "nosuch", "busybox")
    assert r.returncode == 125 and "unknown network mode `nosuch`" in r.stderr
