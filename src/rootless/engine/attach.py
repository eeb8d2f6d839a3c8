"""The channel between a foreground container's monitor and the CLI attached to it.

A foreground ``run`` (and ``start -a``) is create + attach + start + wait, as the docker CLI does it
over the API: the container's monitor (rootless.engine.monitor) owns its stdio (pipes, or the pty with
-t) and its json-file log, and copies the streams to the CLI over the pipes made here; the CLI
copies them to and from its own fds. The container never gets the caller's terminal or files, and
a CLI that is killed (SIGKILL, a CI job's timeout) leaves the container under its monitor, which
still records the exit code and removes an ``--rm`` container.

The pipes (each made here by the CLI before it forks the monitor; "m" the monitor's end):
- ``out``, ``err``: the container's stdout and stderr (one stream with -t), monitor -> CLI;
- ``inp``: what the CLI reads from its stdin (-i), CLI -> monitor -> container (its end of file
  closes the container's stdin; with -t it is the terminal's end-of-file character);
- ``ctl``: window sizes (8-byte TIOCGWINSZ records, atomic in a pipe), CLI -> monitor (-t);
- ``status``: the exit code as a decimal line, monitor -> CLI, once the exit is recorded (and an
  --rm container removed). End of file without one: the monitor is gone; the CLI then reads
  the container's record.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class Feed:
    """Bytes from ``src`` to ``dst`` without ever blocking on ``dst``: read ``src`` only when all
    that was read before is written (so a reader that stops reading never stops the other
    streams). ``on_eof()`` runs once ``src`` ended and everything is written."""

    def __init__(self, src: int, dst: int, on_eof: Callable[[], None]):
        self.src: Optional[int] = src
        self.dst: Optional[int] = dst
        self.pending = b""
        self.on_eof = on_eof
        set_nonblocking(dst)

    @property
    def done(self) -> bool:
        return self.dst is None

    def read_fds(self) -> List[int]:
        return [self.src] if self.src is not None and self.dst is not None and not self.pending else []

    def write_fds(self) -> List[int]:
        return [self.dst] if self.dst is not None and self.pending else []

    def readable(self) -> None:
        assert self.src is not None
        try:
            data = os.read(self.src, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.src = None
        self.pending += data
        self.writable()

    def writable(self) -> None:
        if self.dst is None:
            return
        if self.pending:
            try:
                n = os.write(self.dst, self.pending)
            except BlockingIOError:
                n = 0
            except OSError:  # the reader is gone: drop what is left
                self.dst = None
                self.pending = b""
                return
            self.pending = self.pending[n:]
        if self.src is None and not self.pending:
            self.dst = None
            self.on_eof()

    def drop(self) -> None:
        self.dst = None
        self.pending = b""


class Channel:
    """The pipes between the CLI and the monitor; see the module's docstring."""

    def __init__(self, tty: bool, stdin_open: bool, winsize: Optional[bytes] = None):
        self.tty = tty
        self.stdin_open = stdin_open
        self.winsize = winsize  # the caller's terminal's size at the start (-t)
        self.monitor_pid = 0  # our child (monitor._fork_monitor): reaped by reap_monitor()
        self.client: Dict[str, int] = {}  # our (CLI) ends
        self.mon: Dict[str, int] = {}  # the monitor's ends
        streams = ["out"] + ([] if tty else ["err"])
        for name in streams + ["status"]:
            r, w = os.pipe2(os.O_CLOEXEC)
            self.client[name], self.mon[name] = r, w
        for name in (["inp"] if stdin_open else []) + (["ctl"] if tty else []):
            r, w = os.pipe2(os.O_CLOEXEC)
            self.client[name], self.mon[name] = w, r

    @staticmethod
    def _close(ends: Dict[str, int]) -> None:
        for fd in ends.values():
            try:
                os.close(fd)
            except OSError:
                pass
        ends.clear()

    def close_client(self) -> None:
        self._close(self.client)

    def close_monitor(self) -> None:
        self._close(self.mon)

    def reap_monitor(self) -> None:
        """Reap the monitor if it has exited (it has told the exit: it is about to); a monitor
        still running is left to init when we exit."""
        if self.monitor_pid:
            try:
                os.waitpid(self.monitor_pid, os.WNOHANG)
            except ChildProcessError:
                pass
            self.monitor_pid = 0

    # --- the monitor's side ----------------------------------------------------------------------
    def send(self, stream: str, data: bytes) -> None:
        """Container output to the CLI (blocking: the CLI always reads); dropped once it is gone."""
        fd = self.mon.get("out" if self.tty or stream == "stdout" else "err")
        if fd is None:
            return
        try:
            write_all(fd, data)
        except OSError:  # EPIPE: the CLI was killed; the container goes on, into its log
            self.end(stream)

    def end(self, stream: str) -> None:
        name = "out" if self.tty or stream == "stdout" else "err"
        fd = self.mon.pop(name, None)
        if fd is not None:
            os.close(fd)

    def tell_exit(self, code: int) -> None:
        fd = self.mon.pop("status", None)
        if fd is None:
            return
        try:
            os.write(fd, f"{int(code)}\n".encode())
        except OSError:
            pass
        os.close(fd)
