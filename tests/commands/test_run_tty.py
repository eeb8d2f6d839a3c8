"""The caller's terminal never reaches a container without -t (issue 11, item 11).

Each test runs the real CLI on a terminal of its own (``os.openpty``, the slave as the CLI's
controlling terminal and fds 0-2, as a user's shell would), lets the container try what the audit
saw (test its fds with ``[ -t N ]``, read what the user types from fd 2, ``stty -echo`` through
fds 1 and 2), and then looks at the terminal from the test's side: its termios (``tcgetattr`` on
the slave) and what is still waiting in its input queue.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import termios
import time

import pytest

from enginehelp import leftovers

pytestmark = pytest.mark.usefixtures("clean_containers")

# What the container tries: its fds, the terminal's modes through fds 1 and 2, what is typed (fd 2).
PROBE = ("for n in 0 1 2; do if [ -t $n ]; then echo t$n=yes; else echo t$n=no; fi; done; "
         "stty -echo <&2 2>/dev/null; stty -echo <&1 2>/dev/null; stty raw <&2 2>/dev/null; "
         "echo ready; read -t 3 x <&2 2>/dev/null; echo \"read:[$x]\"")


class Terminal:
    """A pty whose slave is the controlling terminal and fds 0-2 of a child running ``argv``."""

    def __init__(self, argv, env):
        self.master, self.slave = os.openpty()
        self.before = termios.tcgetattr(self.slave)
        self.out = b""
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child: a user's command on its terminal
            try:
                os.setsid()
                fcntl.ioctl(self.slave, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(self.slave, fd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)

    def expect(self, token: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while token not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"no {token!r} in {self.out!r}"
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"eof while waiting for {token!r} in {self.out!r}"
                self.out += chunk

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.pid = 0
                self._drain()
                return os.waitstatus_to_exitcode(status)
            self._drain(0.05)
        raise AssertionError(f"the command did not exit; output {self.out!r}")

    def _drain(self, timeout: float = 0.0) -> None:
        while True:
            r, _, _ = select.select([self.master], [], [], timeout)
            if not r:
                return
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.out += chunk
            timeout = 0.0

    def pending_input(self) -> bytes:
        """What was typed and nobody has read (the user's shell would get it next)."""
        fl = fcntl.fcntl(self.slave, fcntl.F_GETFL)
        fcntl.fcntl(self.slave, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        try:
            return os.read(self.slave, 4096)
        except BlockingIOError:
            return b""
        finally:
            fcntl.fcntl(self.slave, fcntl.F_SETFL, fl)

    def close(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.master)
        os.close(self.slave)


def _attack(term: Terminal) -> None:
    term.expect(b"ready")
    term.type(b"secret\n")  # the user types a line while the container runs
    term.expect(b"read:[")
    assert term.wait() == 0, term.out
    assert b"read:[secret]" not in term.out, term.out  # it could not read what the user typed
    for n in (0, 1, 2):
        assert f"t{n}=no".encode() in term.out, term.out  # no fd of it is a terminal
    assert termios.tcgetattr(term.slave) == term.before  # echo still on, not raw: nothing changed
    assert b"secret" in term.pending_input()  # the line waits for the user's shell


@pytest.mark.nosubuid
def test_run_without_t_never_gets_the_callers_terminal(rl, bb):
    term = Terminal(rl.argv("run", "--rm", bb, "sh", "-c", PROBE), rl.env)
    try:
        _attack(term)
    finally:
        term.close()
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_run_i_without_t_gets_what_is_typed_through_a_pipe(rl, bb):
    """With -i the container reads its stdin (a pipe we fill from the terminal), never the terminal."""
    script = "if [ -t 0 ]; then echo t0=yes; else echo t0=no; fi; echo ready; read x; echo \"got:[$x]\""
    term = Terminal(rl.argv("run", "--rm", "-i", bb, "sh", "-c", script), rl.env)
    try:
        term.expect(b"ready")
        term.type(b"hello\n")
        term.expect(b"got:[hello]")
        assert term.wait() == 0, term.out
        assert b"t0=no" in term.out
        assert termios.tcgetattr(term.slave) == term.before
    finally:
        term.close()


@pytest.mark.nosubuid
def test_run_t_gets_a_pty_of_its_own(rl, bb):
    """-t: a pty of the container's devpts; its stty changes stay there, ours is restored."""
    script = ("tty; for n in 0 1 2; do [ -t $n ] && echo t$n=yes; done; stty -echo; stty raw; "
              "stty -a | grep -q -- -echo && echo own-echo-off; echo end")
    for flags in (["-t"], ["-it"]):
        term = Terminal(rl.argv("run", "--rm", *flags, bb, "sh", "-c", script), rl.env)
        try:
            term.expect(b"end")
            assert term.wait() == 0, term.out
            assert b"/dev/pts/0" in term.out, term.out  # the container's own devpts, not our terminal
            assert all(f"t{n}=yes".encode() in term.out for n in (0, 1, 2)), term.out
            assert b"own-echo-off" in term.out, term.out
            assert termios.tcgetattr(term.slave) == term.before  # raw mode of ours (-i) restored
        finally:
            term.close()


@pytest.mark.nosubuid
def test_exec_without_t_never_gets_the_callers_terminal(rl, bb):
    cid = rl.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    term = Terminal(rl.argv("exec", cid, "sh", "-c", PROBE), rl.env)
    try:
        _attack(term)
    finally:
        term.close()
    rl("rm", "-f", cid)
