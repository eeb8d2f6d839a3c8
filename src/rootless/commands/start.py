"""rootless start: start a created or stopped container; with -a, attach to it and wait for it.

Also the attach machinery `run` uses: the copy between our fds and the container's monitor
(rootless.engine.attach); the terminal handling itself (signals, raw mode, pty and pipe relays) is
commands/terminal.py's, shared with exec.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from rootless.cli.terminal import (
    SignalForwarder,
    follow_winsize,
    pump_tty,
    raw_mode,
    stdio_for,
    write_all,
)
from rootless.cli.terminal import isatty as _isatty
from rootless.cli.terminal import winsize as _winsize
from rootless.errors import RootlessError, UsageError
from rootless.report import Reporter


def add_arguments(p) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--all-restart", action="store_true",
                   help="Start every container whose restart policy is always or unless-stopped (not stopped by hand)")
    p.add_argument("containers", nargs="*", metavar="CONTAINER", help="The containers to start")


def _poll(proc) -> Optional[int]:
    """runtime.Process.poll(), or for an external runtime's `run` process its Popen's."""
    if hasattr(proc, "poll"):
        return proc.poll()
    return None if proc.popen.poll() is None else proc.wait()


def start_attached(config, store, rec, config_file: Optional[str] = None, *, reporter: Reporter) -> int:
    """Start ``rec`` in the foreground: create + attach + start + wait, as the docker CLI does it.

    The container's monitor (rootless.engine.monitor, as for ``run -d``) owns its stdio and its log; we
    copy its streams to and from our fds (rootless.engine.attach), forward signals, and return the exit
    code it recorded. Killed, we leave the container to its monitor: --rm and the exit code still
    happen. (A caller with threads cannot fork a monitor: it runs the container itself.)
    """
    from rootless.runtime.userns import is_single_threaded

    if not is_single_threaded():
        return _start_in_process(config, store, rec, reporter)
    from rootless import state as st
    from rootless.engine import attach as am
    from rootless.engine import monitor

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
        from rootless.engine import containers

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


def _relay(chan, term_fd: Optional[int]) -> Optional[int]:
    """Copy the monitor's streams to our fds 1 and 2, our stdin to it (-i), window sizes (-t);
    then the exit code it sends (None if it is gone without one)."""
    import select

    from rootless.engine import attach as am

    outs = {chan.client["out"]: 1}
    if "err" in chan.client:
        outs[chan.client["err"]] = 2
    feed = None
    winch = None
    if "ctl" in chan.client and term_fd is not None:
        ctl = chan.client["ctl"]
        am.set_nonblocking(ctl)

        def winch() -> None:
            ws = _winsize(term_fd)
            if ws is not None:
                try:
                    os.write(ctl, ws)
                except OSError:
                    pass
    try:
        with raw_mode(0, "inp" in chan.client and chan.tty), follow_winsize(winch):
            if "inp" in chan.client:
                def _eof() -> None:
                    os.close(chan.client.pop("inp"))
                try:
                    os.fstat(0)
                    feed = am.Feed(0, chan.client["inp"], _eof)
                except OSError:  # no stdin at all (`<&-`): the container's ends at once
                    _eof()
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
                        write_all(outs[fd], data)
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
        from rootless import engine
        from rootless.cli.objects import each

        return each(engine.restart_candidates(ctx.config), lambda cid: engine.start(ctx.config, cid, ctx.config_file))
    if not args.containers:
        raise UsageError("start: give a container", "e.g. `rootless start web`, or --all-restart")
    if not args.attach:  # in the background, each under a monitor (rootless.engine.monitor), as docker
        from rootless import engine
        from rootless.cli.objects import each

        def one(ref: str) -> str:
            if args.interactive:
                raise UsageError("start -i without -a: not supported", "use `rootless start -ai CONTAINER`")
            return engine.start(ctx.config, ref, ctx.config_file)

        return each(args.containers, one)
    if len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once", "give one container with -a")
    store = state.Store(ctx.config.data_root)
    rec = store.resolve(args.containers[0])
    if args.interactive:
        rec["Config"]["OpenStdin"] = True
    return start_attached(ctx.config, store, rec, ctx.config_file, reporter=ctx)


__all__ = ["RootlessError"]
