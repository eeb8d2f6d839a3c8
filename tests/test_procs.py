"""rootless.procs: the one parse_signal, exit-code mapping, reaper and start-time reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from rootless import procs
from rootless.commands import runtime
from rootless.engine import containers
from rootless.errors import UsageError


@pytest.mark.parametrize("parse", [procs.parse_signal, containers.parse_signal, runtime.parse_signal])
def test_parse_signal_takes_what_docker_takes(parse):
    assert parse("TERM") == parse("SIGTERM") == parse("term") == parse(" 15 ") == 15
    assert parse("usr1") == 10 and parse("CHLD") == parse("CLD") == 17
    rtmin, rtmax = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    assert parse("RTMIN") == rtmin and parse("SIGRTMAX") == rtmax
    assert parse("RTMIN+1") == rtmin + 1 and parse("SIGRTMIN+15") == rtmin + 15
    assert parse("rtmax-1") == rtmax - 1 and parse("RTMAX-14") == rtmax - 14
    for bad in ("FLY", "", "0", str(signal.NSIG), "RTMIN+16", "RTMAX-15", "RTMIN+x", "RTMIN-1", "-9"):
        with pytest.raises(UsageError, match="invalid signal"):
            parse(bad)


def test_exit_code_of_a_wait_status():
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    _, status = os.waitpid(p.pid, 0)
    p.returncode = 3
    assert procs.exit_code(status) == 3
    p = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    _, status = os.waitpid(p.pid, 0)
    p.returncode = -9
    assert procs.exit_code(status) == 137


def test_stop_kills_what_ignores_sigterm_after_the_deadline():
    quits = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stays = subprocess.Popen([sys.executable, "-c",
                              "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                              "sys.stdout.write('ready'); sys.stdout.flush(); time.sleep(60)"],
                             stdout=subprocess.PIPE)
    assert stays.stdout.read(5) == b"ready"
    t = time.monotonic()
    codes = procs.stop([quits.pid, stays.pid], timeout=0.5)
    took = time.monotonic() - t
    quits.returncode = stays.returncode = 0  # reaped by procs
    stays.stdout.close()
    assert codes == {quits.pid: 128 + signal.SIGTERM, stays.pid: 128 + signal.SIGKILL}
    assert 0.4 < took < 5
    assert procs.start_time(stays.pid) is None


def test_reap_leaves_what_is_not_our_child_and_reads_start_times():
    assert procs.reap(1, 0.1) is None  # not our child: not waited for, never killed
    mine = procs.start_time(os.getpid())
    assert isinstance(mine, int) and mine > 0
    assert procs.start_time(os.getpid(), proc="/nonexistent") is None
