"""rootless start: start a created or stopped container; with -a, attach to it and wait for it.

Also the attach machinery `run` uses: signal forwarding, and with -t the copy loop between the
caller's terminal (in raw mode) and the container's pty, with window-size changes passed on.
Without -t the container never gets a terminal of the caller's (it could read what the user types,
or change the terminal's modes: issue 11): each of our fds 0-2 that is a terminal is replaced by a
pipe that we copy (``PlainRelay``); other fds (files, pipes) are passed as they are.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import List, Optional

from rootless.errors import RootlessError, UsageError
from rootless.report import Reporter

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def add_arguments(p) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--all-restart", action="store_true",
                   help="Start every container whose restart policy is always or unless-stopped (not stopped by hand)")
    p.add_argument("containers", nargs="*", metavar="CONTAINER", help="The containers to start")


class SignalForwarder:
    """Signals sent to us go to the container (docker's --sig-proxy); early ones are kept until then."""

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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _copy_winsize(src: Optional[int], master: int) -> None:
    import fcntl
    import termios

    if src is None:
        return
    try:
        ws = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, ws)
    except OSError:
        pass


def pump_tty(master: int, stdin_open: bool, in_fd: int = 0, out_fd: int = 1) -> None:
    """Copy bytes between our terminal (raw mode) and the container's pty until the pty closes."""
    import select
    import termios
    import tty

    term_fd = next((fd for fd in (in_fd, out_fd, 2) if os.isatty(fd)), None)
    saved = None
    if stdin_open and os.isatty(in_fd):
        saved = termios.tcgetattr(in_fd)
        tty.setraw(in_fd)
    old_winch = None
    if term_fd is not None:
        _copy_winsize(term_fd, master)
        old_winch = signal.signal(signal.SIGWINCH, lambda s, f: _copy_winsize(term_fd, master))
    reading_in = stdin_open
    try:
        while True:
            fds = [master] + ([in_fd] if reading_in else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed, the container is gone
                    data = b""
                if not data:
                    break
                _write_all(out_fd, data)
            if reading_in and in_fd in ready:
                try:
                    data = os.read(in_fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    reading_in = False
                    try:  # our stdin ended: an end-of-file for the container's terminal (VEOF)
                        _write_all(master, b"\x04")
                    except OSError:
                        pass
                else:
                    try:
                        _write_all(master, data)
                    except OSError:
                        break
    finally:
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
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
        elif _isatty(0):
            r, w = os.pipe2(os.O_CLOEXEC)
            self.fds[0] = r
            self.child.append(r)
            self.ins[0] = w
        for fd in (1, 2):
            if _isatty(fd):
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
                                _write_all(self.ins[fd], data)
                                continue
                            except OSError:  # the container closed its stdin
                                pass
                        os.close(self.ins.pop(fd))  # our stdin ended: so does the container's
                    elif data:
                        try:
                            _write_all(self.outs[fd], data)
                        except OSError:  # our side is gone: keep reading, so the container never blocks
                            pass
                    else:
                        os.close(fd)
                        del self.outs[fd]
        finally:
            self.close()


def _poll(proc) -> Optional[int]:
    """runtime.Process.poll(), or for an external runtime's `run` process its Popen's."""
    if hasattr(proc, "poll"):
        return proc.poll()
    return None if proc.popen.poll() is None else proc.wait()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def stdio_for(tty: bool, stdin_open: bool):
    """(Stdio, PlainRelay or None). With -t the runtime makes the container a pty of its own
    (in its devpts) and we copy it; without, see PlainRelay: never a terminal of ours."""
    from rootless.runtime import Stdio

    if tty:
        return Stdio(tty=True, stdin=0 if stdin_open else None), None
    relay = PlainRelay(stdin_open)
    return relay.stdio(), relay


def start_attached(config, store, rec, config_file: Optional[str] = None, *, reporter: Reporter) -> int:
    """Start ``rec`` in the foreground: create + attach + start + wait, as the docker CLI does it.

    The container's monitor (rootless.monitor, as for ``run -d``) owns its stdio and its log; we
    copy its streams to and from our fds (rootless.attach), forward signals, and return the exit
    code it recorded. Killed, we leave the container to its monitor: --rm and the exit code still
    happen. (A caller with threads cannot fork a monitor: it runs the container itself.)
    """
    from rootless.runtime.userns import is_single_threaded

    if not is_single_threaded():
        return _start_in_process(config, store, rec, reporter)
    from rootless import attach as am
    from rootless import monitor
    from rootless import state as st

    c = rec["Config"]
    s = rec["State"]  # (as read just now: the monitor checks again under the lock)
    if s.get("Running") or s.get("Restarting"):  # before its monitor touches anything of it
        raise RootlessError(f"start container `{rec['Name'].lstrip('/')}`: it is already running",
                            "stop it first, or use `rootless exec`")
    tty, stdin_open = bool(c.get("Tty")), bool(c.get("OpenStdin"))
    term_fd = next((fd for fd in (0, 1, 2) if _isatty(fd)), None) if tty else None
    chan = am.Channel(tty, stdin_open, _winsize(term_fd))
    sys.stdout.flush()
    sys.stderr.flush()
    with SignalForwarder() as fwd:
        try:
            pid = monitor.launch(config, config_file, rec["Id"], attach=chan, rec=rec)
        except BaseException:
            chan.close_client()
            chan.reap_monitor()
            raise
        fwd.set_target(_Container(pid, st.proc_start_time(pid) or 0))
        code = _relay(chan, term_fd)
    chan.reap_monitor()
    if code is None:  # the monitor is gone without telling: what the record says
        from rootless import containers

        containers.wait_stopped(store, rec["Id"])
        try:
            code = int(store.load(rec["Id"])["State"].get("ExitCode") or 0)
        except RootlessError:
            code = 255
    return code


class _Container:
    """The signal target of an attached CLI: the container's init (if it is still that process)."""

    def __init__(self, pid: int, start_time: int):
        self.state = {"Pid": pid, "PidStartTime": start_time}

    def kill(self, sig: int) -> None:
        from rootless import state as st

        if st.is_alive(self.state):
            try:
                os.kill(self.state["Pid"], sig)
            except OSError:
                pass


def _winsize(fd: Optional[int]) -> Optional[bytes]:
    import fcntl
    import termios

    if fd is None:
        return None
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def _relay(chan, term_fd: Optional[int]) -> Optional[int]:
    """Copy the monitor's streams to our fds 1 and 2, our stdin to it (-i), window sizes (-t);
    then the exit code it sends (None if it is gone without one)."""
    import select
    import termios

    from rootless import attach as am

    outs = {chan.client["out"]: 1}
    if "err" in chan.client:
        outs[chan.client["err"]] = 2
    feed = None
    saved = None
    old_winch = None
    try:
        if "inp" in chan.client:
            if chan.tty and _isatty(0):
                import tty as ttymod

                saved = termios.tcgetattr(0)
                ttymod.setraw(0)

            def _eof() -> None:
                os.close(chan.client.pop("inp"))
            try:
                os.fstat(0)
                feed = am.Feed(0, chan.client["inp"], _eof)
            except OSError:  # no stdin at all (`<&-`): the container's ends at once
                _eof()
        if "ctl" in chan.client and term_fd is not None:
            ctl = chan.client["ctl"]
            am.set_nonblocking(ctl)

            def _winch(signum, frame) -> None:
                ws = _winsize(term_fd)
                if ws is not None:
                    try:
                        os.write(ctl, ws)
                    except OSError:
                        pass
            old_winch = signal.signal(signal.SIGWINCH, _winch)
        while outs:
            rfds = list(outs) + (feed.read_fds() if feed is not None else [])
            wfds = feed.write_fds() if feed is not None else []
            try:
                ready, wready, _ = select.select(rfds, wfds, [])
            except InterruptedError:
                continue
            if wready and feed is not None:
                feed.writable()
            for fd in ready:
                if feed is not None and fd == feed.src:
                    feed.readable()
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    os.close(fd)
                    del outs[fd]
                    for k, v in list(chan.client.items()):
                        if v == fd:
                            del chan.client[k]
                    continue
                try:
                    _write_all(outs[fd], data)
                except OSError:  # our stdout is gone: keep reading, the container must not block
                    pass
        data = b""
        status = chan.client["status"]
        while True:
            try:
                chunk = os.read(status, 64)
            except InterruptedError:
                continue
            if not chunk:
                break
            data += chunk
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        chan.close_client()
    try:
        return int(data.strip())
    except ValueError:
        return None


def _start_in_process(config, store, rec, reporter: Reporter) -> int:
    """Start ``rec`` as our own child: forward signals, copy the pty with -t, wait, return the exit code."""
    from rootless import engine

    c = rec["Config"]
    tty, stdin_open = bool(c.get("Tty")), bool(c.get("OpenStdin"))
    stdio, relay = stdio_for(tty, stdin_open)
    sys.stdout.flush()
    sys.stderr.flush()
    with SignalForwarder() as fwd:
        try:
            started = engine.start_record(config, store, rec, stdio=stdio, reporter=reporter)
        except BaseException:
            if relay is not None:
                relay.close()
            raise
        fwd.set_target(started)
        if tty and started.pty_master is not None:
            pump_tty(started.pty_master, stdin_open)
        elif relay is not None:
            relay.started()
            relay.run(lambda: _poll(started.proc))
        code = started.wait()
    e = started.cleanup_error
    if e is not None:
        sys.stderr.write(f"warning: {e.message}\n" + (f"hint: {e.hint}\n" if e.hint else ""))
    return code


def main(args, ctx) -> int:
    from rootless import state


    if args.all_restart:  # after a reboot: what docker's daemon restarts when it starts
        from rootless import containers

        return containers.start_all_restart(ctx.config, ctx.config_file)
    if not args.containers:
        raise UsageError("start: give a container", "e.g. `rootless start web`, or --all-restart")
    if not args.attach:  # in the background, each under a monitor (rootless.monitor), as docker
        from rootless import containers
        from rootless.commands.stop import each

        store = state.Store(ctx.config.data_root)

        def one(ref: str) -> None:
            rec = store.resolve(ref)
            if args.interactive:
                raise UsageError("start -i without -a: not supported", "use `rootless start -ai CONTAINER`")
            containers.start_detached(ctx.config, ctx.config_file, store, rec)

        return each(args.containers, one)
    if len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once", "give one container with -a")
    store = state.Store(ctx.config.data_root)
    rec = store.resolve(args.containers[0])
    if args.interactive:
        rec["Config"]["OpenStdin"] = True
    return start_attached(ctx.config, store, rec, ctx.config_file, reporter=ctx)


__all__ = ["RootlessError"]
