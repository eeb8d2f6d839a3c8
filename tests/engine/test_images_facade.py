"""engine.images, called as the Engine API will call it: values back (rows, ImageInspect, history
entries, delete items), errors raised; no registry, no containers (a hand-made archive is loaded)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from fixtures.objects_archive import archive, config
from rootless.engine import images
from rootless.errors import ImageError, NotFound, UsageError

pytestmark = pytest.mark.nosubuid


@pytest.fixture
def loaded(tmp_path):
    cfg = config(tmp_path)
    image_id = archive(tmp_path / "a.tar", ["example.com/team/app:1.0"])
    assert images.load(cfg, str(tmp_path / "a.tar")) == ["Loaded image: example.com/team/app:1.0"]
    return cfg, image_id


def test_import_is_cheap():
    import subprocess
    import sys

    import rootless

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(rootless.__file__)))
    code = "import sys, rootless.engine.images; print(sorted(m for m in sys.modules if m.startswith('rootless')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    assert out.strip() == "['rootless', 'rootless.engine', 'rootless.engine.images', 'rootless.errors']"


def test_filters_are_checked():
    assert images.parse_filters(["dangling=true", "reference=a*", "reference=b"], images.LIST_FILTERS) == {
        "dangling": ["true"], "reference": ["a*", "b"]}
    with pytest.raises(UsageError, match="invalid filter 'until'"):
        images.parse_filters(["until=1h"], images.LIST_FILTERS)
    with pytest.raises(UsageError, match="expected name=value"):
        images.parse_filters(["dangling"], images.LIST_FILTERS)
    assert images.parse_until({}) is None
    assert images.parse_until({"until": ["0"]}) == 0.0
    with pytest.raises(UsageError, match="not supported"):
        images.parse_until({"label": ["a=b"]})
    with pytest.raises(UsageError, match="invalid filter 'until=soon'"):
        images.parse_until({"until": ["soon"]})


def test_list_inspect_history(loaded):
    cfg, image_id = loaded
    rows = images.list_images(cfg)
    assert rows == [images.ImageRow(image_id, "example.com/team/app", "1.0", "<none>", "2024-01-02T03:04:05Z",
                                    rows[0].size)]
    assert rows[0].size > 0
    assert images.list_images(cfg, {"dangling": ["true"]}) == []
    assert images.list_images(cfg, {"reference": ["example.com/team/*"]}) == rows
    assert images.list_images(cfg, {"reference": ["other/*"]}) == []
    assert images.list_images(cfg, repository="example.com/team/app:2.0") == []
    with pytest.raises(UsageError):
        images.list_images(cfg, {"dangling": ["maybe"]})

    d = images.inspect(cfg, "example.com/team/app:1.0")
    assert d["Id"] == image_id and d["RepoTags"] == ["example.com/team/app:1.0"]
    assert d["Config"]["Cmd"] == ["sh"] and d["Config"]["Entrypoint"] is None and d["Os"] == "linux"
    assert len(d["RootFS"]["Layers"]) == 1 and d["Size"] == rows[0].size
    with pytest.raises(NotFound, match="No such image: nosuch"):
        images.inspect(cfg, "nosuch")

    h = images.history(cfg, image_id[7:19])
    assert [e.id for e in h] == [image_id, "<missing>"]
    assert h[0].size == 0 and h[0].created_by.endswith('CMD ["sh"]')
    assert h[1].size > 0 and "ADD file:marker" in h[1].created_by


def test_tag_remove_prune(loaded, tmp_path):
    cfg, image_id = loaded
    images.tag(cfg, "example.com/team/app:1.0", "copy")
    with pytest.raises(UsageError, match="digest reference"):
        images.tag(cfg, "copy", "copy@sha256:" + "0" * 64)
    assert {(r.repository, r.tag) for r in images.list_images(cfg)} == {("example.com/team/app", "1.0"),
                                                                          ("copy", "latest")}
    # by id, with two repositories: a conflict unless forced
    with pytest.raises(ImageError, match="referenced in multiple repositories"):
        images.remove(cfg, image_id)
    # by name: an untag while another tag is left
    assert images.remove(cfg, "copy") == [images.Deleted("Untagged", "copy:latest")]
    # the last tag: untagged then deleted
    items = images.remove(cfg, "example.com/team/app:1.0")
    assert items[0] == images.Deleted("Untagged", "example.com/team/app:1.0")
    assert images.Deleted("Deleted", image_id) in items
    assert images.list_images(cfg) == []
    with pytest.raises(NotFound):
        images.remove(cfg, "example.com/team/app:1.0")

    # prune: a dangling image goes, a tagged one only with all_images
    archive(tmp_path / "b.tar", ["keep:1"], marker="two")
    images.load(cfg, str(tmp_path / "b.tar"))
    assert images.prune(cfg) == images.PruneReport([], 0)
    report = images.prune(cfg, all_images=True, until=None)
    assert report.deleted[0] == images.Deleted("Untagged", "keep:1") and report.reclaimed > 0
    assert images.list_images(cfg) == []


def test_save_and_load_streams(loaded, tmp_path):
    cfg, image_id = loaded
    buf = io.BytesIO()
    images.save(cfg, ["example.com/team/app:1.0"], stream=buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        assert "manifest.json" in tf.getnames()
    images.remove(cfg, "example.com/team/app:1.0")
    buf.seek(0)
    assert images.load(cfg, stream=buf) == ["Loaded image: example.com/team/app:1.0"]
    assert os.listdir(os.path.join(cfg.data_root, "image", "tmp")) == []  # the spool file is gone
    with pytest.raises(UsageError):
        images.save(cfg, ["example.com/team/app:1.0"])
    with pytest.raises(Exception, match="no such file"):
        images.load(cfg, str(tmp_path / "absent.tar"))
    assert images.usage(cfg, [image_id]) == images.ImageUsage(1, 1, images.usage(cfg, []).size, 0)
