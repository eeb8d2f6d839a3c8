"""Manifest parsing and platform matching."""

from __future__ import annotations

import json

import pytest

from rootless.errors import ImageError, UsageError
from rootless.image import manifest as mf


def _index(*plats):
    return json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
        {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + str(i) * 64, "size": 1, "platform": p}
        for i, p in enumerate(plats)]}).encode()


def test_platform_parse_and_normalise():
    assert str(mf.parse_platform("linux/amd64")) == "linux/amd64"
    assert str(mf.parse_platform("linux/x86_64")) == "linux/amd64"
    assert str(mf.parse_platform("linux/aarch64")) == "linux/arm64"
    assert str(mf.parse_platform("linux/arm64/v8")) == "linux/arm64"
    assert str(mf.parse_platform("linux/arm")) == "linux/arm/v7"
    assert str(mf.host_platform("x86_64")) == "linux/amd64"
    with pytest.raises(UsageError):
        mf.parse_platform("linux//")


def test_choose_platform():
    idx = mf.parse(_index({"os": "linux", "architecture": "amd64"},
                          {"os": "linux", "architecture": "arm", "variant": "v6"},
                          {"os": "linux", "architecture": "arm", "variant": "v7"},
                          {"os": "linux", "architecture": "arm64", "variant": "v8"},
                          {"os": "unknown", "architecture": "unknown"}))
    assert isinstance(idx, mf.Index)
    assert mf.choose(idx, mf.parse_platform("linux/amd64"), "x").digest == "sha256:" + "0" * 64
    assert mf.choose(idx, mf.parse_platform("linux/arm/v7"), "x").digest == "sha256:" + "2" * 64
    assert mf.choose(idx, mf.parse_platform("linux/arm64"), "x").digest == "sha256:" + "3" * 64
    with pytest.raises(ImageError) as e:
        mf.choose(idx, mf.parse_platform("linux/ppc64le"), "x")
    assert "no matching manifest for linux/ppc64le" in e.value.message
    assert "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8" in e.value.hint
    assert "unknown" not in e.value.hint


def test_parse_kinds_and_errors():
    m = mf.parse(json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
                             "config": {"mediaType": mf.DOCKER_CONFIG, "digest": "sha256:" + "c" * 64, "size": 5},
                             "layers": [{"mediaType": mf.DOCKER_FOREIGN_GZIP, "digest": "sha256:" + "d" * 64,
                                         "size": 9, "urls": ["https://example.com/l"]}]}).encode())
    assert isinstance(m, mf.Manifest) and m.layers[0].is_foreign and m.layers[0].urls == ("https://example.com/l",)
    with pytest.raises(ImageError, match="schema 1"):
        mf.parse(b'{"schemaVersion": 1, "fsLayers": []}')
    with pytest.raises(ImageError, match="not valid JSON"):
        mf.parse(b"<html>")
    with pytest.raises(ImageError, match="unsupported manifest media type"):
        mf.parse(b'{"mediaType": "text/plain"}')
    assert mf.compression_of(mf.OCI_LAYER_ZSTD) == "zstd"
    assert mf.compression_of(mf.DOCKER_LAYER_GZIP) == "gzip"
    assert mf.compression_of(mf.OCI_LAYER) == "none"
    with pytest.raises(ImageError, match="unsupported layer media type"):
        mf.compression_of("application/vnd.example.layer.v1.tar+lz4")
