"""monitor and containers helpers: restart rules, durations, statuses, signals, parsing (pure parts)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rootless import state
from rootless.engine import containers, monitor
from rootless.errors import UsageError

pytestmark = pytest.mark.nosubuid


def test_restart_rules_are_dockers():
    p = monitor.restart_policy
    assert p({}) == {"Name": "no", "MaximumRetryCount": 0}
    no, always = p({}), {"Name": "always", "MaximumRetryCount": 0}
    of2 = {"Name": "on-failure", "MaximumRetryCount": 2}
    of = {"Name": "on-failure", "MaximumRetryCount": 0}
    assert not monitor.should_restart(no, 1, 0, False)
    assert monitor.should_restart(always, 0, 100, False)
    assert not monitor.should_restart(always, 0, 0, True)  # stopped by hand
    assert monitor.should_restart(of2, 1, 1, False) and not monitor.should_restart(of2, 1, 2, False)
    assert not monitor.should_restart(of2, 0, 0, False)
    assert monitor.should_restart(of, 1, 1000, False)
    assert monitor.should_restart({"Name": "unless-stopped", "MaximumRetryCount": 0}, 0, 0, False)


def test_parse_restart_and_log_config():
    assert containers.parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert containers.parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    for bad in ("always:3", "often", "on-failure:x"):
        with pytest.raises(UsageError):
            containers.parse_restart(bad)

    class Cfg:
        log_driver = "json-file"
        log_opts = {"max-size": "10m"}

    assert containers.parse_log_config("", [], Cfg) == {"Type": "json-file", "Config": {"max-size": "10m"}}
    assert containers.parse_log_config("", ["max-file=2"], Cfg) == {"Type": "json-file", "Config": {"max-file": "2"}}
    assert containers.parse_log_config("none", [], Cfg) == {"Type": "none", "Config": {}}
    for drv, opts in (("gelf", []), ("", ["colour=red"]), ("", ["max-size"]), ("none", ["max-size=1k"])):
        with pytest.raises(UsageError):
            containers.parse_log_config(drv, opts, Cfg)


def test_human_duration_and_status():
    h = containers.human_duration
    assert [h(0.5), h(1), h(59), h(60), h(119), h(3000), h(3600), h(47 * 3600), h(72 * 3600)] == [
        "Less than a second", "1 second", "59 seconds", "About a minute", "About a minute", "50 minutes",
        "About an hour", "47 hours", "3 days"]
    now = containers.parse_time("2024-05-01T10:00:10Z")
    s = state.new_state()
    rec = {"Id": "a" * 64, "State": s}
    assert containers.status_text(rec, now) == "Created"
    s.update(Status="running", Running=True, StartedAt="2024-05-01T10:00:07.5Z")
    assert containers.status_text(rec, now) == "Up 2 seconds"
    s.update(Paused=True)
    assert containers.status_text(rec, now) == "Up 2 seconds (Paused)"
    s.update(Status="exited", Running=False, Paused=False, ExitCode=143, FinishedAt="2024-05-01T09:59:10Z")
    assert containers.status_text(rec, now) == "Exited (143) About a minute ago"
    s.update(Status="restarting", Restarting=True, ExitCode=1)
    assert containers.status_text(rec, now).startswith("Restarting (1) ")


def test_signals_and_command_text():
    assert containers.parse_signal("TERM") == 15 and containers.parse_signal("SIGKILL") == 9
    assert containers.parse_signal("10") == 10 and containers.parse_signal("usr1") == 10
    with pytest.raises(UsageError):
        containers.parse_signal("FLY")
    assert containers.ellipsis("sh -c 'echo hello world'", 20) == "sh -c 'echo hello w…"


def test_refresh_of_a_restarting_container_whose_monitor_died(tmp_path):
    s = state.Store(str(tmp_path))
    cid = "d" * 64
    st = state.new_state()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    st.update(Status="restarting", Restarting=True, MonitorPid=dead.pid, MonitorStartTime=1)
    s.create({"Id": cid, "Name": "/r", "State": st, "Config": {}, "HostConfig": {}})
    got = s.load(cid)["State"]
    assert got["Status"] == "exited" and not got["Restarting"] and got["Error"]
    st.update(MonitorPid=os.getpid(), MonitorStartTime=state.proc_start_time(os.getpid()))
    s.save({"Id": cid, "Name": "/r", "State": st, "Config": {}, "HostConfig": {}})
    assert s.load(cid)["State"]["Status"] == "restarting"


def test_monitor_imports_neither_requests_nor_pyroute2():
    code = ("import sys; import rootless.engine.monitor, rootless.engine, rootless.logs, rootless.runtime.parent; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'pyroute2', 'urllib3')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")})
    assert r.stdout.strip() == "[]", r.stderr
