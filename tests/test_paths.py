"""Default locations, the private exec-root fallback, atomic writes."""

import os

import pytest

from rootless import paths
from rootless.errors import RootlessError

pytestmark = pytest.mark.nosubuid


def test_exec_root_prefers_xdg_runtime_dir(tmp_path):
    er = paths.default_exec_root({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert er.path == str(tmp_path / "rootless") and er.warning is None


def test_exec_root_fallback_when_unset(tmp_path):
    er = paths.default_exec_root({}, tmpdir=str(tmp_path))
    assert er.path == str(tmp_path / f"rootless-run-{os.getuid()}")
    assert "XDG_RUNTIME_DIR is not set" in er.warning


def test_exec_root_fallback_when_not_ours(tmp_path):
    er = paths.default_exec_root({"XDG_RUNTIME_DIR": "/"}, tmpdir=str(tmp_path))
    assert "is not a directory you own" in er.warning


def test_private_dir_is_0700_and_refuses_a_symlink(tmp_path):
    d = tmp_path / "p"
    paths.ensure_private_dir(str(d))
    assert (os.stat(d).st_mode & 0o777) == 0o700
    os.chmod(d, 0o755)
    paths.ensure_private_dir(str(d))
    assert (os.stat(d).st_mode & 0o777) == 0o700
    link = tmp_path / "l"
    os.symlink(str(tmp_path), link)
    with pytest.raises(RootlessError) as ei:
        paths.ensure_private_dir(str(link))
    assert "not a directory" in ei.value.message


@pytest.mark.skipif(os.getuid() == 0, reason="root owns everything")
def test_private_dir_refuses_someone_elses():
    with pytest.raises(RootlessError) as ei:
        paths.ensure_private_dir("/var/tmp" if os.stat("/var/tmp").st_uid != os.getuid() else "/")
    assert "belongs to uid" in ei.value.message or "not a directory" in ei.value.message


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f"
    paths.atomic_write(str(p), b"one")
    paths.atomic_write(str(p), b"two")
    assert p.read_bytes() == b"two"
    assert [x.name for x in tmp_path.iterdir()] == ["f"]
