"""The faces' terminal handling, one of each: the signal forwarder, the pty relay, the pipe relay.

The engine and the runtime never look at a terminal; the CLI does, here, for ``run``, ``start -a``,
``exec`` and ``runtime run``:

- ``SignalForwarder``: signals sent to us go to the container's process (docker's --sig-proxy);
  those that come before it is known are kept until then.
- ``pump_tty``: with -t, the copy between our terminal (raw mode, window size followed) and a pty
  master of the container's own devpts.
- ``PlainRelay``: without -t the container never gets a terminal of ours (it could read what the
  user types, or change the terminal's modes: issue 11): each of our fds 0-2 that is a terminal is
  replaced by a pipe that we copy; other fds (files, pipes) are passed as they are.
- ``raw_mode`` and ``follow_winsize``: what the relay of an attached container (start.py) shares.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Callable, Iterator, List, Optional

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class SignalForwarder:
    """Signals sent to us go to ``target.kill(sig)`` (docker's --sig-proxy); early ones are kept until then."""

    def __init__(self, signals=FORWARDED):
        self.signals = signals
        self.target = None
        self.pending: List[int] = []
        self._old = {}

    def __enter__(self) -> SignalForwarder:
        for s in self.signals:
            try:
                self._old[s] = signal.signal(s, self._handler)
            except (OSError, ValueError):
                pass
        return self

    def _handler(self, signum, frame) -> None:
        if self.target is None:
            self.pending.append(signum)
        else:
            self.target.kill(signum)

    def set_target(self, target) -> None:
        self.target = target
        pending, self.pending = self.pending, []
        for s in pending:
            target.kill(s)

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            try:
                signal.signal(s, h)
            except (OSError, ValueError):
                pass


class PidTarget:
    """A signal target for a process of our own making (its pid cannot be reused before we reap it)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def kill(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except OSError:
            pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def winsize(fd: Optional[int]) -> Optional[bytes]:
    """The window size of terminal ``fd`` (struct winsize), None when it has none."""
    import fcntl
    import termios

    if fd is None:
        return None
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def copy_winsize(src: Optional[int], master: int) -> None:
    import fcntl
    import termios

    ws = winsize(src)
    if ws is None:
        return
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, ws)
    except OSError:
        pass


@contextlib.contextmanager
def raw_mode(fd: int, enabled: bool = True) -> Iterator[None]:
    """Terminal ``fd`` in raw mode (ctrl-C, ctrl-Z reach the container's line discipline, not
    ours) while inside; restored on the way out, whatever happens. Nothing when it is no terminal."""
    import termios
    import tty

    saved = None
    if enabled and isatty(fd):
        try:
            saved = termios.tcgetattr(fd)
            tty.setraw(fd)
        except termios.error:
            saved = None
    try:
        yield
    finally:
        if saved is not None:
            try:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            except termios.error:
                pass


@contextlib.contextmanager
def follow_winsize(changed: Optional[Callable[[], None]]) -> Iterator[None]:
    """``changed()`` on every SIGWINCH while inside (nothing with None)."""
    old = None
    if changed is not None:
        old = signal.signal(signal.SIGWINCH, lambda s, f: changed())
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGWINCH, old)


def _veof(master: int) -> bytes:
    """The end-of-file character of the container's terminal (ctrl-D unless it changed it)."""
    import termios

    try:
        eof = termios.tcgetattr(master)[6][termios.VEOF]
        return eof if isinstance(eof, bytes) else bytes([eof])
    except (OSError, termios.error, IndexError):
        return b"\x04"


def pump_tty(master: int, stdin_open: bool, in_fd: int = 0, out_fd: int = 1,
             poll: Optional[Callable[[], Optional[int]]] = None) -> None:
    """Copy bytes between our terminal (raw mode) and the container's pty until the pty closes
    (every slave fd closed), or with ``poll`` (the process's exit code or None) until the process
    exited and its output is drained. Closes ``master``."""
    import select

    term_fd = next((fd for fd in (in_fd, out_fd, 2) if isatty(fd)), None)
    if term_fd is not None:
        copy_winsize(term_fd, master)
    reading_in = stdin_open
    if poll is not None:
        os.set_blocking(master, False)
    try:
        with raw_mode(in_fd, stdin_open), \
                follow_winsize(None if term_fd is None else (lambda: copy_winsize(term_fd, master))):
            while True:
                fds = [master] + ([in_fd] if reading_in else [])
                try:
                    ready, _, _ = select.select(fds, [], [], None if poll is None else 0.1)
                except InterruptedError:
                    continue
                if master in ready or (not ready and poll is not None and poll() is not None):
                    try:
                        data = os.read(master, 65536)
                    except BlockingIOError:  # exited, and nothing left to read
                        break
                    except OSError:  # EIO: every slave fd is closed, the container is gone
                        data = b""
                    if not data:
                        break
                    try:
                        write_all(out_fd, data)
                    except OSError:  # our side is gone
                        break
                    continue
                if reading_in and in_fd in ready:
                    try:
                        data = os.read(in_fd, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        reading_in = False
                        try:  # our stdin ended: an end-of-file for the container's terminal
                            write_all(master, _veof(master))
                        except OSError:
                            pass
                    else:
                        try:
                            write_all(master, data)
                        except OSError:
                            break
    finally:
        try:
            os.close(master)
        except OSError:
            pass


class PlainRelay:
    """Without -t: pipes in place of those of our fds 0-2 that are terminals, and the copy loop.

    ``fds`` are the container's ends (0, 1, 2 -> fd, or None: our own fd as it is); after the
    start, ``started()`` closes them here and ``run(poll)`` copies until the container's output
    pipes end (or one second after it exited, when something it left behind holds them open).
    """

    def __init__(self, stdin_open: bool):
        self.fds: List[Optional[int]] = [None, None, None]
        self.child: List[int] = []  # the container's ends, closed here once it runs
        self.outs: dict = {}  # our read end -> our fd (1 or 2)
        self.ins: dict = {}  # our fd 0 -> the write end of the container's stdin
        if not stdin_open:
            self.fds[0] = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self.child.append(self.fds[0])
        elif isatty(0):
            r, w = os.pipe2(os.O_CLOEXEC)
            self.fds[0] = r
            self.child.append(r)
            self.ins[0] = w
        for fd in (1, 2):
            if isatty(fd):
                r, w = os.pipe2(os.O_CLOEXEC)
                self.fds[fd] = w
                self.child.append(w)
                self.outs[r] = fd

    def stdio(self):
        from rootless.runtime import Stdio

        return Stdio(stdin=self.fds[0], stdout=self.fds[1], stderr=self.fds[2])

    def started(self) -> None:
        for fd in self.child:
            os.close(fd)
        self.child = []

    def close(self) -> None:
        for fd in self.child + list(self.outs) + list(self.ins.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        self.child, self.outs, self.ins = [], {}, {}

    def run(self, poll) -> None:
        """Copy until the output pipes end; ``poll()`` is the container's exit code or None."""
        import select
        import time

        try:
            code = None
            drain_until = 0.0
            while self.outs or self.ins:
                if code is None:
                    code = poll()
                    if code is not None:
                        drain_until = time.monotonic() + 1.0
                if code is not None and (not self.outs or time.monotonic() > drain_until):
                    break
                try:
                    ready, _, _ = select.select(list(self.outs) + list(self.ins), [], [], 0.1)
                except InterruptedError:
                    continue
                for fd in ready:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if fd in self.ins:
                        if data:
                            try:
                                write_all(self.ins[fd], data)
                                continue
                            except OSError:  # the container closed its stdin
                                pass
                        os.close(self.ins.pop(fd))  # our stdin ended: so does the container's
                    elif data:
                        try:
                            write_all(self.outs[fd], data)
                        except OSError:  # our side is gone: keep reading, so the container never blocks
                            pass
                    else:
                        os.close(fd)
                        del self.outs[fd]
        finally:
            self.close()


def stdio_for(tty: bool, stdin_open: bool):
    """(Stdio, PlainRelay or None). With -t the runtime makes the container a pty of its own
    (in its devpts) and we copy it; without, see PlainRelay: never a terminal of ours."""
    from rootless.runtime import Stdio

    if tty:
        return Stdio(tty=True, stdin=0 if stdin_open else None), None
    relay = PlainRelay(stdin_open)
    return relay.stdio(), relay
