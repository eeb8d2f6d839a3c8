"""Damaged container records (issue 11, Low items): a record with fields of the wrong types, or
truncated JSON, must not stop `ps -a`, `run` or `system df`; a running container whose record is
truncated still counts as running, so its volume cannot be removed under it."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.usefixtures("clean_containers")


def _plant(rl, cid: str, data: bytes) -> None:
    d = os.path.join(rl.data_root, "containers", cid)
    os.makedirs(d, mode=0o700, exist_ok=True)
    with open(os.path.join(d, "config.json"), "wb") as f:
        f.write(data)


def _record_path(rl, cid: str) -> str:
    return os.path.join(rl.data_root, "containers", cid, "config.json")


def test_records_of_wrong_types_are_skipped_with_a_warning(rl, bb):
    good = rl.ok("create", "--name", "good", bb, "true").stdout.strip()
    base = json.loads(open(_record_path(rl, good)).read())
    bad = {
        "a1" * 32: dict(base, Id="a1" * 32, Name="/bad1", State="running"),
        "a2" * 32: dict(base, Id="a2" * 32, Name=5),
        "a3" * 32: dict(base, Id="a3" * 32, Name="/bad3", Config=[]),
        "a4" * 32: dict(base, Id="a4" * 32, Name="/bad4", State=dict(base["State"], Pid="12ab", Running=True)),
        "a5" * 32: [1, 2, 3],
    }
    for cid, rec in bad.items():
        _plant(rl, cid, json.dumps(rec).encode())
    _plant(rl, "a6" * 32, json.dumps(base).encode()[:40])  # truncated
    _plant(rl, "a7" * 32, b"[" * 200000 + b"]" * 200000)  # nested too deep for json

    r = rl("ps", "-a", "--no-trunc")
    assert r.returncode == 0, r
    assert good in r.stdout
    for cid in list(bad) + ["a6" * 32, "a7" * 32]:
        assert f"warning: skipping damaged container {cid[:12]}" in r.stderr, r
    assert "internal error" not in r.stderr

    r = rl("run", "--rm", "--name", "fresh", bb, "echo", "hello")
    assert r.returncode == 0 and r.stdout == "hello\n", r
    r = rl("system", "df")
    assert r.returncode == 0 and "Containers" in r.stdout, r

    # and each can be removed
    for cid in list(bad) + ["a6" * 32, "a7" * 32]:
        r = rl("rm", "-f", cid)
        assert r.returncode == 0, r
    assert "warning" not in rl.ok("ps", "-a").stderr


def test_truncated_record_of_a_running_container_keeps_its_volume_in_use(rl, bb):
    cid = rl.ok("run", "-d", "-v", "keep:/data", bb, "sleep", "300").stdout.strip()
    path = _record_path(rl, cid)
    data = open(path, "rb").read()
    with open(path, "wb") as f:  # as a crash or a full disk would leave it
        f.write(data[: len(data) // 2])

    r = rl("volume", "rm", "keep")
    assert r.returncode != 0, f"the volume of a running container was removed:\n{r}"
    assert "in use" in r.stderr and cid[:12] in r.stderr, r
    assert os.path.isdir(os.path.join(rl.data_root, "volumes", "keep")), "the volume's data is gone"

    r = rl("ps", "-a")
    assert r.returncode == 0, r
    assert f"skipping damaged container {cid[:12]} (its process is still running)" in r.stderr, r

    r = rl("rm", cid)
    assert r.returncode != 0 and "running" in r.stderr, r
    rl.ok("rm", "-f", cid)
    rl.ok("volume", "rm", "keep")
