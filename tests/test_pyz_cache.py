"""Old unpacked copies of the program (~/.cache/rootless/pyz-<build id>/) are removed (issue 11, Low):
those of other builds unused for a week and not held by a running process; never the current one,
never one a process of its build still runs from, never anything not ours."""

import fcntl
import os
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.nosubuid
DAY = 86400


def _pyz():
    p = os.environ.get("ROOTLESS_TEST_PYZ")
    if not p:
        pytest.skip("ROOTLESS_TEST_PYZ is not set (tests/run builds the .pyz and sets it)")
    return p


def _copy(cache, name, age_days, complete=True):
    d = cache / name
    (d / "rootless").mkdir(parents=True)
    (d / "rootless" / "__init__.py").write_text("")
    if complete:
        (d / ".complete").write_text("")
        t = time.time() - age_days * DAY
        os.utime(d / ".complete", (t, t))
    t = time.time() - age_days * DAY
    os.utime(d, (t, t))
    return d


def _run(dst, env):
    r = subprocess.run(["/usr/bin/python3", str(dst), "--version"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("rootless version"), r.stderr


def test_stale_copies_of_other_builds_are_removed(tmp_path):
    dst = tmp_path / "rootless.pyz"
    shutil.copy(_pyz(), dst)
    cache = tmp_path / "cache" / "rootless"
    old = _copy(cache, "pyz-0000000000000old", 30)
    recent = _copy(cache, "pyz-00000000000recent", 2)
    held = _copy(cache, "pyz-0000000000000held", 30)
    half = _copy(cache, ".unpack-abc123", 3, complete=False)
    elsewhere = tmp_path / "elsewhere"
    _copy(tmp_path, "elsewhere", 30)
    os.symlink(elsewhere, cache / "pyz-00000000000symlink")
    (cache / "pyz-notadir").write_text("x")
    # a process of the "held" build runs: it holds its copy as the bootstrap does
    fd = os.open(held / ".complete", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
        _run(dst, env)  # a new build unpacks: it sweeps
    finally:
        os.close(fd)
    names = sorted(os.listdir(cache))
    current = [n for n in names if n.startswith("pyz-") and n not in
               (recent.name, held.name, "pyz-00000000000symlink", "pyz-notadir")]
    assert len(current) == 1 and os.path.exists(cache / current[0] / ".complete"), names
    assert not old.exists() and not half.exists(), names
    assert recent.exists() and held.exists(), names
    assert (elsewhere / ".complete").exists() and os.path.islink(cache / "pyz-00000000000symlink")
    assert (cache / "pyz-notadir").exists()
    assert not [n for n in names if n.startswith(".gone-")], names

    # A day later (the current copy's .complete is touched at most daily) the held build has
    # stopped: the next start removes it, and marks the current copy as used.
    cur = cache / current[0] / ".complete"
    t = time.time() - 2 * DAY
    os.utime(cur, (t, t))
    _run(dst, env)
    assert not held.exists() and recent.exists()
    assert time.time() - os.stat(cur).st_mtime < 600
    # the current copy is never removed, however old it looks
    t = time.time() - 30 * DAY
    os.utime(cur, (t, t))
    _run(dst, env)
    assert cur.exists()
