"""engine.volumes' facade (VolumeSpec, create/list/inspect/remove/prune), as the Engine API calls it."""

from __future__ import annotations

import pytest

from fixtures.objects_archive import config
from rootless.engine import volumes
from rootless.errors import NotFound, UsageError

pytestmark = pytest.mark.nosubuid


def test_spec_is_checked_once():
    s = volumes.VolumeSpec.from_cli("data", "local", ["a=b", "flag"], [])
    assert s == volumes.VolumeSpec("data", "local", {"a": "b", "flag": ""}, {})
    assert volumes.VolumeSpec.make().name == ""
    with pytest.raises(UsageError, match="driver `nfs`: not supported"):
        volumes.VolumeSpec.make("data", driver="nfs")
    with pytest.raises(UsageError, match="options: not supported"):
        volumes.VolumeSpec.from_cli("data", "local", [], ["type=tmpfs"])
    with pytest.raises(UsageError, match="invalid name"):
        volumes.VolumeSpec.make("-bad")


def test_create_list_inspect_remove_prune(tmp_path):
    cfg = config(tmp_path)
    info = volumes.create_volume(cfg, volumes.VolumeSpec.make("data", labels={"team": "a"}))
    assert info["Name"] == "data" and info["Driver"] == "local" and info["Labels"] == {"team": "a"}
    assert info["Mountpoint"].endswith("/volumes/data/_data")
    # an existing name is kept as it is
    assert volumes.create_volume(cfg, volumes.VolumeSpec.make("data"))["Labels"] == {"team": "a"}
    anon = volumes.create_volume(cfg, volumes.VolumeSpec.make())["Name"]
    assert len(anon) == 64
    vs = volumes.VolumeStore(cfg.data_root)
    vs.create("anon2", anonymous=True)

    names = [i["Name"] for i in volumes.list_volumes(cfg)]
    assert names == sorted([anon, "anon2", "data"])
    assert [i["Name"] for i in volumes.list_volumes(cfg, ["label=team=a"])] == ["data"]
    assert [i["Name"] for i in volumes.list_volumes(cfg, ["name=ano", "dangling=true"])] == ["anon2"]
    assert volumes.list_volumes(cfg, ["dangling=false"]) == []
    # a bad filter is refused even before there is anything to match
    with pytest.raises(UsageError, match="invalid filter `colour`"):
        volumes.list_volumes(config(tmp_path / "empty"), ["colour=red"])

    assert volumes.inspect_volume(cfg, "data") == info
    with pytest.raises(NotFound):
        volumes.inspect_volume(cfg, "nosuch")
    volumes.remove_volume(cfg, "data")
    with pytest.raises(NotFound):
        volumes.remove_volume(cfg, "data")
    # prune: the anonymous ones (created by a container) go; with all_volumes, every unused one
    assert volumes.prune_volumes(cfg) == ["anon2"]
    assert volumes.prune_volumes(cfg, all_volumes=True) == [anon]
    assert volumes.list_volumes(cfg) == []
