"""engine.system: version, df (typed lines), info's warnings apart, registry host names."""

from __future__ import annotations

import pytest

from fixtures.objects_archive import archive, config
from rootless.engine import images, system

pytestmark = pytest.mark.nosubuid


def test_version():
    from rootless import API_VERSION, __version__

    v = system.version()
    assert v["Client"]["Version"] == v["Server"]["Version"] == __version__
    assert v["Server"]["ApiVersion"] == API_VERSION and v["Server"]["Os"] == "linux"


def test_df(tmp_path):
    cfg = config(tmp_path)
    assert system.df(cfg) == [system.UsageLine("Images", 0, 0, 0, 0), system.UsageLine("Containers", 0, 0, 0, 0),
                              system.UsageLine("Local Volumes", 0, 0, 0, 0), system.UsageLine("Build Cache", 0, 0, 0, 0)]
    archive(tmp_path / "a.tar", ["a:1"])
    images.load(cfg, str(tmp_path / "a.tar"))
    from rootless.engine import volumes

    vs = volumes.VolumeStore(cfg.data_root)
    vs.create("data")
    with open(vs.data("data") + "/f", "wb") as f:
        f.write(b"x" * 10000)
    lines = {u.type: u for u in system.df(cfg)}
    size = images.list_images(cfg)[0].size
    assert lines["Images"] == system.UsageLine("Images", 1, 0, size, size)
    v = lines["Local Volumes"]
    assert v.total == 1 and v.size >= 10000 and v.reclaimable == v.size


def test_info_returns_warnings_apart(tmp_path):
    d, warnings = system.info(config(tmp_path))
    assert "_warnings" not in d and d["Warnings"] == [w.text for w in warnings]


def test_server_host():
    assert system.server_host(None) == "docker.io"
    assert system.server_host("https://index.docker.io/v1/") == "docker.io"
    assert system.server_host("registry.example.com:5000") == "registry.example.com:5000"
