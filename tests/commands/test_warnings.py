"""Warnings reach a face: the engine reports through the reporter it is given (issue 12).

`rm -f` used to drop its teardown warnings (only run/create/start set the module global the
engine warned through), so a port proxy or network lease that could not be released went unsaid.
"""

from __future__ import annotations

import json
import os

import pytest

from rootless import engine
from rootless.report import Collector

pytestmark = [pytest.mark.nosubuid, pytest.mark.usefixtures("clean_data_root")]


def _with_unreleasable_lease(rl, cid: str, sock: str) -> None:
    """The record says the container holds a lease of the root helper at ``sock``, which is gone."""
    path = os.path.join(rl.data_root, "containers", cid, "config.json")
    with open(path) as f:
        rec = json.load(f)
    rec.setdefault("Rootless", {})["Net"] = json.dumps({"mode": "helper", "helper_socket": sock, "container_pid": 4242})
    with open(path, "w") as f:
        json.dump(rec, f)


def test_rm_f_says_what_it_could_not_tear_down(rl, bb, tmp_path):
    cid = rl.ok("create", "--network", "none", bb, "true").stdout.strip()
    sock = str(tmp_path / "gone.sock")
    _with_unreleasable_lease(rl, cid, sock)
    r = rl("rm", "-f", cid)
    assert r.returncode == 0, r
    assert "warning: " in r.stderr and "gone.sock" in r.stderr, r
    assert "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(rl.data_root, "containers", cid))


def test_teardown_reports_to_the_reporter_it_is_given(tmp_path):
    net = json.dumps({"mode": "helper", "helper_socket": str(tmp_path / "gone.sock"), "container_pid": 4242})
    rec = {"Id": "x", "State": {}, "Rootless": {"Net": net}}
    seen = Collector()
    engine.teardown_attachments(rec, reporter=seen)
    assert len(seen.warnings) == 1 and "gone.sock" in seen.warnings[0][0]
    assert rec["Rootless"]["Net"] is None


def test_the_monitor_logs_the_teardown_warnings_of_a_record(rl, bb, tmp_path, capsys):
    """The monitor tears down from the record when it did not start the container itself (a
    watcher after a re-exec): what it could not release is said in its monitor.log (its stderr)."""
    from rootless.engine import monitor

    cid = rl.ok("create", "--network", "none", bb, "true").stdout.strip()
    _with_unreleasable_lease(rl, cid, str(tmp_path / "gone.sock"))
    w = {"data_root": rl.data_root, "cid": cid, "restarts": 0, "delay": 0.1, "t0": 0.0, "config_file": None}
    assert monitor._after_exit(w, 0, None) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "gone.sock" in err
    with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
        assert json.load(f)["Rootless"]["Net"] is None
