"""Copy between the caller's terminal and a container's pty master, like `docker run -it`.

``proxy(master, process)`` puts the caller's stdin in raw mode when it is a terminal (so ctrl-C,
ctrl-Z and job control reach the container's line discipline, not ours), follows SIGWINCH,
copies both ways, and returns the container's exit code once it has exited and its output is
drained. The terminal mode is restored on the way out, whatever happens.
"""

from __future__ import annotations

import errno
import os
import select
import signal
from typing import Optional

from rootless.runtime.process import Process


def _set_winsize(src: int, master: int) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return False
        view = view[n:]
    return True


def proxy(master: int, process: Process, stdin: Optional[int] = 0, stdout: int = 1) -> int:
    """Relay until the container exits; returns its exit code. ``stdin=None``: no input."""
    import termios
    import tty

    saved = None
    if stdin is not None and os.isatty(stdin):
        try:
            saved = termios.tcgetattr(stdin)
            tty.setraw(stdin, termios.TCSANOW)
        except termios.error:
            saved = None
    winsize_src = stdin if stdin is not None and os.isatty(stdin) else (stdout if os.isatty(stdout) else None)
    old_winch = None
    if winsize_src is not None:
        _set_winsize(winsize_src, master)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: _set_winsize(winsize_src, master))
    try:
        return _copy(master, process, stdin, stdout)
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None:
            try:
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            except termios.error:
                pass


def _read(fd: int) -> Optional[bytes]:
    """Bytes, b"" at the end (EIO: every slave fd is closed), None when nothing is there yet."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as e:
        if e.errno == errno.EIO:
            return b""
        raise


def _copy(master: int, process: Process, stdin: Optional[int], stdout: int) -> int:
    import termios

    os.set_blocking(master, False)
    inputs = [master] + ([stdin] if stdin is not None else [])
    while True:
        try:
            ready, _, _ = select.select(inputs, [], [], 0.1)
        except InterruptedError:
            continue
        if master in ready:
            data = _read(master)
            if data == b"" or (data and not _write_all(stdout, data)):
                break
        if stdin is not None and stdin in ready:
            try:
                data = os.read(stdin, 65536)
            except OSError:
                data = b""
            if data:
                _write_all(master, data)
            else:
                # EOF on our side: give the container the terminal's EOF character.
                inputs.remove(stdin)
                try:
                    eof = termios.tcgetattr(master)[6][termios.VEOF]
                    _write_all(master, eof if isinstance(eof, bytes) else bytes([eof]))
                except (OSError, termios.error, IndexError):
                    pass
        if not ready and process.poll() is not None:
            data = _read(master)
            if data:
                _write_all(stdout, data)
                continue
            break
    return process.wait()
