"""Process helpers, one of each: signal names, exit codes, kill, reap with a deadline, start time.

Dependency-free (os, signal, time; ``rootless.errors`` only when a signal name is refused), because
the lean processes import it too: the monitor, the port proxy, the runtime's process handle.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterable, Optional

# docker's signal table (moby/sys/signal, linux): RTMIN+1..RTMIN+15 and RTMAX-14..RTMAX-1 by name
_RT_SPAN = 15


def parse_signal(text: str) -> int:
    """A signal as docker takes it: ``TERM``, ``SIGTERM``, ``term``, ``15``, ``RTMIN+3``, ``SIGRTMAX-2``."""
    t = (text or "").strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < signal.NSIG:
            return n
    elif t:
        name = t if t.startswith("SIG") else "SIG" + t
        if name in signal.Signals.__members__ and not name.startswith("SIGRT"):
            return int(signal.Signals[name])
        for base, sign, span in (("SIGRTMIN", "+", _RT_SPAN), ("SIGRTMAX", "-", _RT_SPAN - 1)):
            if name == base:
                return int(getattr(signal, base))
            off = name[len(base) + 1:]
            if name.startswith(base + sign) and off.isdigit() and 1 <= int(off) <= span:
                return int(getattr(signal, base)) + (int(off) if sign == "+" else -int(off))
    from rootless.errors import UsageError

    raise UsageError(f"invalid signal `{text}`", "use a name such as SIGTERM, TERM, KILL or RTMIN+1, or a number")


def exit_code(status: int) -> int:
    """A wait status as docker and the shells report it: the exit status, or 128 + the signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def kill(pid: int, sig: int) -> bool:
    """Signal ``pid``; False when it is gone (or not ours to signal)."""
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def poll(pid: int) -> Optional[int]:
    """The exit code of our child ``pid`` when it has ended (reaped now), else None.
    ChildProcessError when it is not our child."""
    got, status = os.waitpid(pid, os.WNOHANG)
    return exit_code(status) if got else None


def wait(pid: int) -> int:
    """Wait for our child ``pid``; 255 when it is not our child (docker's "unknown")."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        return exit_code(status)


def reap(pid: int, timeout: float, *, kill_after: bool = True) -> Optional[int]:
    """Wait up to ``timeout`` seconds for our child ``pid`` to end; then SIGKILL it and wait
    (``kill_after``) or leave it. Returns its exit code, None when it was not ours or was left."""
    return stop([pid], timeout, sig=0, kill_after=kill_after).get(pid)


def stop(pids: Iterable[int], timeout: float = 2.0, *, sig: int = signal.SIGTERM, kill_after: bool = True) -> dict:
    """Send ``sig`` (0: none) to each pid, wait for them by one deadline, SIGKILL the ones left
    (``kill_after``) and reap them. Only our children are waited for: a pid that is not our child
    (another process started it) is neither waited for nor killed after the first signal, since
    its pid may be reused by then. Returns {pid: exit code} of the children reaped."""
    pids = list(pids)
    if sig:
        for pid in pids:
            kill(pid, sig)
    codes = {}
    deadline = time.monotonic() + timeout
    for pid in pids:
        while True:
            try:
                code = poll(pid)
            except ChildProcessError:
                break
            if code is not None:
                codes[pid] = code
                break
            if time.monotonic() > deadline:
                if kill_after and kill(pid, signal.SIGKILL):
                    codes[pid] = wait(pid)
                break
            time.sleep(0.01)
    return codes


def start_time(pid: int, proc: str = "/proc", zombie_is_gone: bool = False) -> Optional[int]:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), None when the process is
    gone (with ``zombie_is_gone``, also when it has exited and waits to be reaped: an orphan's
    reaper, pid 1, may take its time). Saved beside a pid so that a reused pid is not taken for it."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2:].split()
    if zombie_is_gone and rest[:1] in ([b"Z"], [b"X"]):
        return None
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None
