"""The monitor: the parent of every container (``run -d``, ``start``; and a foreground ``run`` or
``start -a``, whose CLI attaches to it through ``rootless.engine.attach`` and can be killed without
orphaning the container: the monitor still records the exit code and removes an --rm container).

One small process per container, started by the CLI as a re-exec of the same Python with our
``sys.path`` (so it works from the source tree and from the .pyz alike), in a new session with no
controlling terminal and stdin/stdout on /dev/null: closing the caller's terminal does not reach
it (conmon and containerd-shim do the same). It

- calls ``engine.start_record`` itself, so that it is the process the runtime's ``spawn`` makes a
  child subreaper: the container's init is its child and ``wait()`` works;
- owns the container's stdout/stderr (pipes, or the pty master with ``-t``) and writes them with
  ``logs.JsonFileWriter`` to ``<id>-json.log`` under the container's log options;
- records the exit code and FinishedAt under the container's lock, re-reading the record first
  (a `rename` meanwhile is kept), and removes an ``--rm`` container;
- restarts the container per its RestartPolicy (docker's back-off: 100 ms doubling, reset after
  10 s of running) until it is stopped by hand (``stop-requested`` marker) or the policy says no.

It tells the CLI that the start worked (or why not) with one JSON line on a pipe, then closes it.
Its own stderr goes to ``<container dir>/monitor.log`` so that an unexpected failure leaves a trace.

The heavy modules (engine, storage, runtime) are imported for the spawn and then stay; requests and
pyroute2 are never imported here. ``bench/bench_detach.py`` measures its RSS.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

from rootless import procs
from rootless.engine import events
from rootless.report import StreamReporter

# The monitor's face for the engine's warnings (teardown problems, fallbacks): its stderr, which is
# the container's monitor.log (see launch)
_LOG = StreamReporter()

STOP_MARKER = "stop-requested"
BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0


def restart_policy(rec: Dict[str, Any]) -> Dict[str, Any]:
    rp = (rec.get("HostConfig") or {}).get("RestartPolicy") or {}
    return {"Name": rp.get("Name") or "no", "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0)}


def should_restart(policy: Dict[str, Any], code: int, restarts: int, manual_stop: bool) -> bool:
    """docker's rules: never after a manual stop; on-failure only for a non-zero code, N times at most."""
    name = policy["Name"]
    if manual_stop or name in ("no", ""):
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        n = policy["MaximumRetryCount"]
        return code != 0 and (n <= 0 or restarts < n)
    return False


class _Streams:
    """The fds the monitor reads the container's output from, and what it keeps open for it."""

    def __init__(self, tty: bool, stdin_open: bool, log: bool, winsize: Optional[bytes] = None):
        from rootless.runtime import Stdio

        self.fds: Dict[int, str] = {}
        self.keep: List[int] = []  # our ends we hold (stdin of `-i`)
        self.child: List[int] = []  # the container's ends: closed once it runs
        devnull_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.child.append(devnull_in)
        if tty:
            winsize_from = None
            if winsize is not None:
                # the runtime sizes the container's pty before its command starts, from a terminal
                # of ours: a scratch pty of the attached caller's size (never the caller's own)
                import fcntl
                import termios

                m, sl = os.openpty()
                self.child += [m, sl]
                try:
                    fcntl.ioctl(sl, termios.TIOCSWINSZ, winsize)
                    winsize_from = sl
                except OSError:
                    pass
            self.stdio = Stdio(tty=True, winsize_from=winsize_from)
            return
        stdin = devnull_in
        if stdin_open:  # `run -di sh`: docker keeps the container's stdin open (and empty)
            r, w = os.pipe2(os.O_CLOEXEC)
            self.keep.append(w)
            self.child.append(r)
            stdin = r
        if log:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self.fds = {out_r: "stdout", err_r: "stderr"}
            self.child += [out_w, err_w]
            self.stdio = Stdio(stdin=stdin, stdout=out_w, stderr=err_w)
        else:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            self.child.append(null)
            self.stdio = Stdio(stdin=stdin, stdout=null, stderr=null)

    def started(self, pty_master: Optional[int]) -> None:
        for fd in self.child:
            os.close(fd)
        self.child = []
        if pty_master is not None:
            self.fds = {pty_master: "stdout"}  # a terminal has one stream: docker logs it as stdout

    def close(self) -> None:
        for fd in list(self.fds) + self.keep + self.child:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds, self.keep, self.child = {}, [], []


def _log_options(rec: Dict[str, Any]) -> Optional[List[Any]]:
    """[max_size, max_file, compress] of the container's log, None for --log-driver none."""
    from rootless import logs

    lc = (rec.get("HostConfig") or {}).get("LogConfig") or {}
    kind = lc.get("Type") or "json-file"
    if kind == "none":
        return None
    opts = dict(lc.get("Config") or {})
    if kind == "local":  # docker's local driver defaults; we keep the json-file format
        opts.setdefault("max-size", "20m")
        opts.setdefault("max-file", "5")
        opts.setdefault("compress", "true")
    o = logs.LogOptions.from_opts(opts)
    return [o.max_size, o.max_file, o.compress]


def _update_state(store, cid: str, **fields: Any) -> Optional[Dict[str, Any]]:
    """Re-read the record under its lock, update State (and top-level keys), save; None if removed."""
    from rootless.errors import RootlessError

    top = {k: fields.pop(k) for k in list(fields) if k in ("RestartCount", "Rootless")}
    if top.get("Rootless", 0) is None:
        del top["Rootless"]
    try:
        with store.lock(cid):
            rec = store.load(cid)
            rec["State"].update(fields)
            if "Rootless" in top and (rec.get("Rootless") or {}).get("Limits") is not None:
                # the limits are the record's: `rootless update` may have changed them while it ran
                top["Rootless"] = dict(top["Rootless"] or {}, Limits=rec["Rootless"]["Limits"])
            rec.update(top)
            store.save(rec, durable=not rec["HostConfig"].get("AutoRemove"))
            return rec
    except (OSError, RootlessError):
        return None  # removed meanwhile (`rm -f`)


# --- start mode: spawn the container (the heavy modules are imported here) ---------------------------


def start_mode(config_file: str, cid: str, status_fd: int, restarts: int = 0, delay: float = BACKOFF_START,
               cfg=None, attach=None, rec_in=None) -> int:
    from rootless import config as cfgmod
    from rootless import engine
    from rootless import state as st
    from rootless.errors import RootlessError

    first = status_fd >= 0
    try:
        cfg = cfg if cfg is not None else cfgmod.load(config_file or None)
        store = st.Store(cfg.data_root)
        store.dir(cid)  # checks the id
        if first:
            try:
                os.unlink(store.path(cid, STOP_MARKER))
            except OSError:
                pass
        elif os.path.exists(store.path(cid, STOP_MARKER)):  # a stop came while we re-executed
            _update_state(store, cid, Status="exited", Restarting=False)
            return 0
        if rec_in is not None:  # the attached CLI's record (start_record reads it again under the lock)
            rec = rec_in
        else:
            rec = store.load(cid)
        log = _log_options(rec)
        if attach is not None:  # docker's order for a foreground run: create, attach, start, die
            events.container(cfg, rec, "attach", _LOG)
        c = rec["Config"]
        streams = _Streams(bool(c.get("Tty")), bool(c.get("OpenStdin")), log is not None or attach is not None,
                           attach.winsize if attach is not None else None)
        try:
            me = os.getpid()  # saved with the container's pid: `stop`, `wait` and `ps` know it has a monitor
            started = engine.start_record(cfg, store, rec, stdio=streams.stdio, reporter=_LOG,
                                          state_extra={"MonitorPid": me, "MonitorStartTime": procs.start_time(me) or 0})
        except BaseException:
            streams.close()
            raise
    except RootlessError as e:
        if first:
            _report(status_fd, {"message": e.message, "hint": e.hint, "exit_code": e.exit_code})
        if attach is not None:
            attach.close_monitor()
        return 1
    except BaseException as e:  # noqa: BLE001 - reported to the CLI, which renders it
        if first:
            _report(status_fd, {"message": f"start container: {type(e).__name__}: {e}",
                                "hint": "run again with --debug; see monitor.log in the container's directory",
                                "exit_code": 125})
        raise
    streams.started(started.pty_master)
    if first:
        _report(status_fd, {"ok": True, "pid": started.pid})
    w = {"cid": cid, "config_file": config_file, "data_root": cfg.data_root, "pid": started.pid,
         "helpers": list(getattr(started.proc, "helper_pids", None) or []), "fds": {str(k): v for k, v in streams.fds.items()},
         "keep": list(streams.keep), "log": log, "log_path": store.log_path(cid), "restarts": restarts, "delay": delay,
         "t0": time.monotonic()}
    if attach is not None:
        # an attached CLI waits for the exit: no re-exec as the lean watcher on its way
        w["cfg"] = cfg
        return watch(w, started, attach)
    if (rec["HostConfig"].get("Runtime") or "rootless") in ("rootless", ""):
        # Our runtime's teardown works from the record alone: become the lean watcher (same pid:
        # the container stays our child, and PR_SET_CHILD_SUBREAPER survives execve).
        for fd in list(streams.fds) + streams.keep:
            os.set_inheritable(fd, True)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, "-S", "-c", WATCH_BOOT, json.dumps(sys.path), json.dumps(w)])
        except OSError as e:
            sys.stderr.write(f"warning: re-exec as the watcher: {e}; watching in this process\n")
    return watch(w, started)


# --- watch mode: copy output to the log, record the exit, restart (lean: logs + json) ------------------


def watch(w: Dict[str, Any], started=None, attach=None) -> int:
    """Until the container exits; then record it, and restart or remove it as its policy says.

    With ``attach`` (an ``attach.Channel``: a foreground run's CLI), the output goes to the CLI as
    well as to the log, and the CLI's stdin and window sizes to the container; the exit code is
    sent to it once recorded. A CLI that goes away changes nothing for the container."""
    import select

    try:
        with open("/proc/self/comm", "w") as f:
            f.write("rootless:mon")
    except OSError:
        pass
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    signal.signal(signal.SIGCHLD, lambda s, f: None)
    signal.set_wakeup_fd(wake_w)
    for s in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(s, signal.SIG_IGN)
    writer = None
    if w["log"] is not None:
        from rootless import logs

        writer = logs.JsonFileWriter(w["log_path"], logs.LogOptions(*w["log"]))
    fds = {int(k): v for k, v in w["fds"].items()}
    pid = int(w["pid"])
    code: Optional[int] = None
    drain_deadline = 0.0
    feed = None
    ctl = None
    master = next(iter(fds)) if attach is not None and attach.tty and fds else None
    if attach is not None:
        from rootless.engine import attach as am

        if "inp" in attach.mon:
            if master is not None:
                def _veof() -> None:  # the caller's stdin ended: the terminal's end-of-file for the container
                    try:
                        os.write(master, b"\x04")
                    except OSError:
                        pass
                feed = am.Feed(attach.mon["inp"], master, _veof)
            elif w["keep"]:
                stdin_w = w["keep"][0]

                def _close_stdin() -> None:
                    w["keep"].remove(stdin_w)
                    os.close(stdin_w)
                feed = am.Feed(attach.mon["inp"], stdin_w, _close_stdin)
        if master is not None:
            ctl = attach.mon.get("ctl")
    while True:
        if code is None:
            code = _proc_poll(started.proc) if started is not None else _poll(pid)
            if code is not None:
                drain_deadline = time.monotonic() + 1.0
        if not fds:
            if code is None:
                code = started.proc.wait() if started is not None else _wait(pid)
            break
        if code is not None and time.monotonic() > drain_deadline:
            break  # something else in the container's namespaces holds the pipe: give up on it
        extra = ([] if feed is None else feed.read_fds()) + ([ctl] if ctl is not None else [])
        try:
            ready, wready, _ = select.select(list(fds) + [wake_r] + extra, [] if feed is None else feed.write_fds(), [],
                                             0.05 if code is not None else None)
        except InterruptedError:
            continue
        if wready and feed is not None:
            feed.writable()
        for fd in ready:
            if fd == wake_r:
                try:
                    os.read(wake_r, 512)
                except OSError:
                    pass
                continue
            if feed is not None and fd == feed.src:
                feed.readable()
                continue
            if fd == ctl:
                ctl = _winsize_from(ctl, master)
                continue
            if fd not in fds:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO on a pty whose slave side is all closed
                data = b""
            if not data:
                if writer is not None:
                    writer.flush_partial(fds[fd])
                if attach is not None:
                    attach.end(fds[fd])
                if feed is not None and feed.dst == fd:
                    feed.drop()
                if fd == master:
                    master = None
                os.close(fd)
                del fds[fd]
                continue
            if writer is not None:
                writer.write(fds[fd], data)
            if attach is not None:
                attach.send(fds[fd], data)
    for fd in list(fds) + list(w["keep"]):
        try:
            os.close(fd)
        except OSError:
            pass
    if writer is not None:
        writer.close()
    if started is None:  # (in process, Process.wait has stopped them)
        procs.stop(w["helpers"])  # fuse-overlayfs unmounts on SIGTERM; SIGKILL after 2 s
    if attach is None:
        return _after_exit(w, code, started)
    for name in ("out", "err", "inp", "ctl"):
        fd = attach.mon.pop(name, None)
        if fd is not None:
            os.close(fd)  # the CLI's output ends with the container's
    try:
        return _after_exit(w, code, started, attach)
    finally:
        attach.tell_exit(code)


def _winsize_from(ctl: int, master: Optional[int]) -> Optional[int]:
    """Read window sizes the attached CLI sent; set the last on the pty. None once the pipe ended."""
    try:
        data = os.read(ctl, 8 * 64)
    except OSError:
        data = b""
    if not data:
        return None
    if master is not None and len(data) >= 8:
        from rootless.runtime.parent import set_winsize

        set_winsize(master, data[(len(data) // 8 - 1) * 8:][:8])
    return ctl


def _proc_poll(proc) -> Optional[int]:
    """runtime.Process.poll(), or for an external runtime's `run` process its Popen's."""
    if hasattr(proc, "poll"):
        return proc.poll()
    rc = proc.popen.poll()
    if rc is None:
        return None
    return proc.wait()


def _poll(pid: int) -> Optional[int]:
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if os.path.exists(f"/proc/{pid}") else 255
    if got == 0:
        return None
    return procs.exit_code(status)


def _wait(pid: int) -> int:
    while True:
        code = _poll(pid)
        if code is not None:
            return code
        time.sleep(0.05)


def _after_exit(w: Dict[str, Any], code: int, started, attach=None) -> int:
    from rootless import state as st

    store = st.Store(w["data_root"])
    cid = w["cid"]
    extra: Dict[str, Any] = {}
    try:
        if started is not None:
            started._cleanup()  # the engine's teardown for this run (network, cgroup)
            extra = {"Rootless": started.rec.get("Rootless"),
                     "OOMKilled": bool(started.rec.get("State", {}).get("OOMKilled"))}
        else:
            rec = store.load(cid)
            own = rec.get("Rootless") or {}
            if own.get("Net") or own.get("Cgroup"):
                from rootless import engine

                engine.teardown_attachments(rec, reporter=_LOG)  # from the record: the same as the in-process teardown
                extra = {"Rootless": rec.get("Rootless"), "OOMKilled": bool(rec["State"].get("OOMKilled"))}
    except Exception as e:  # noqa: BLE001 - the exit code matters more; keep a trace
        _LOG.warn(f"clean up after the container: {e}")
    _reap_others()
    events.container(w["data_root"], cid, "die", _LOG, exitCode=code, execDuration=int(time.monotonic() - float(w["t0"])))
    if started is not None and started.rec["HostConfig"].get("AutoRemove"):
        # --rm (never restarted): straight to the removal, as the in-process engine.finish does
        from rootless import config as cfgmod
        from rootless import engine
        from rootless.errors import RootlessError

        r = started.rec
        r["State"].update(Status="exited", Running=False, Pid=0, PidStartTime=0, ExitCode=code, FinishedAt=st.now())
        try:
            cfg = w.get("cfg") or cfgmod.load(w["config_file"] or None)
            engine.remove(cfg, cid, force=True, store=store, rec=r, reporter=_LOG)
            if r.get("Mounts"):
                from rootless.engine import volumes

                volumes.remove_anonymous(cfg, r)  # docker's --rm takes them too
            return 0
        except RootlessError as e:  # then at least the exit is recorded, below
            _LOG.warn(e.message, e.hint)
    manual = os.path.exists(store.path(cid, STOP_MARKER))
    restarts, delay = int(w["restarts"]), float(w["delay"])
    try:
        again = should_restart(restart_policy(store.load(cid)), code, restarts, manual)
    except Exception:  # noqa: BLE001 - removed meanwhile
        return 0
    # one update: `wait` and `ps` never see an exited container that is about to restart
    rec = _update_state(store, cid, Status="restarting" if again else "exited", Running=False, Paused=False,
                        Restarting=again, Pid=0, PidStartTime=0, ExitCode=code, Error="", FinishedAt=st.now(),
                        **extra)
    if rec is None:
        return 0  # removed while it ran
    if again:
        if attach is not None:
            attach.tell_exit(code)  # as docker's CLI: the foreground run ends; the restarts go on
        if time.monotonic() - float(w["t0"]) >= BACKOFF_RESET_AFTER:
            delay = BACKOFF_START
        if _sleep_unless_stopped(store, cid, delay):
            if _update_state(store, cid, RestartCount=int(rec.get("RestartCount") or 0) + 1) is None:
                return 0
            args = [w["config_file"] or "", cid, "-1", str(restarts + 1), str(min(delay * 2, BACKOFF_MAX))]
            try:
                os.execv(sys.executable, [sys.executable, "-S", "-c", BOOT, json.dumps(sys.path)] + args)
            except OSError:
                return start_mode(w["config_file"] or "", cid, -1, restarts + 1, min(delay * 2, BACKOFF_MAX))
        rec = _update_state(store, cid, Status="exited", Restarting=False)
        if rec is None:
            return 0
    if rec["HostConfig"].get("AutoRemove"):
        from rootless import config as cfgmod
        from rootless import engine
        from rootless.errors import RootlessError

        try:
            cfg = w.get("cfg") or cfgmod.load(w["config_file"] or None)
            engine.remove(cfg, cid, force=True, store=store, reporter=_LOG)
            if rec.get("Mounts"):
                from rootless.engine import volumes

                volumes.remove_anonymous(cfg, rec)  # docker's --rm takes them too
        except RootlessError as e:
            _LOG.warn(e.message, e.hint)
    return 0


def _sleep_unless_stopped(store, cid: str, delay: float) -> bool:
    marker = store.path(cid, STOP_MARKER)
    end = time.monotonic() + delay
    while time.monotonic() < end:
        if os.path.exists(marker) or not os.path.isdir(store.dir(cid)):
            return False
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    return not os.path.exists(marker)


def _reap_others() -> None:
    """Children that were re-parented to us (we are a subreaper) and have exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _report(fd: int, msg: Dict[str, Any]) -> None:
    try:
        os.write(fd, (json.dumps(msg) + "\n").encode())
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


def main(argv: List[str]) -> int:
    """``config_file cid status_fd [restarts delay]``: run as the monitor of container ``cid``."""
    config_file, cid, status = argv[:3]
    status_fd = int(status)
    if status_fd >= 0:
        # A double fork: the CLI reaps the first one at once, so the monitor is nobody's zombie-to-be
        # and is re-parented to init (or the nearest subreaper) whatever the CLI does next.
        if os.fork() > 0:
            os._exit(0)
    try:
        from rootless.linux import syscalls as sc

        sc.set_name("rootless:monitor")
    except Exception:  # noqa: BLE001 - a cosmetic name
        pass
    restarts = int(argv[3]) if len(argv) > 3 else 0
    delay = float(argv[4]) if len(argv) > 4 else BACKOFF_START
    return start_mode(config_file, cid, status_fd, restarts, delay)


def watch_main(arg: str) -> int:
    return watch(json.loads(arg))


# The re-exec entry: ``python -S -c BOOT <sys.path json> <config_file> <cid> <status_fd>``.
BOOT = (
    "import sys,json\n"
    "sys.path[:]=json.loads(sys.argv[1])\n"
    "from rootless.engine.monitor import main\n"
    "raise SystemExit(main(sys.argv[2:]))\n"
)
# After the start: ``python -S -c WATCH_BOOT <sys.path json> <watch state json>`` (same pid).
WATCH_BOOT = (
    "import sys,json\n"
    "sys.path[:]=json.loads(sys.argv[1])\n"
    "from rootless.engine.monitor import watch_main\n"
    "raise SystemExit(watch_main(sys.argv[2]))\n"
)


def launch(config, config_file: Optional[str], cid: str, timeout: float = 120.0, attach=None,
           rec=None) -> int:
    """Start the monitor of ``cid`` (detached from us) and wait until it says the container runs.

    Returns the container's pid; raises the start's RootlessError (with its exit code) otherwise.
    ``attach`` (an ``attach.Channel``, a foreground run) needs a single-threaded caller (a fork),
    and ``rec``, the caller's record of the container (with the Config of this start: `start -ai`).
    """
    import subprocess

    from rootless import state as st
    from rootless.errors import RootlessError

    store = st.Store(config.data_root)
    r, w = os.pipe2(os.O_CLOEXEC)
    err = os.open(store.path(cid, "monitor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    env = dict(os.environ)
    if config_file is None and "ROOTLESS_CONFIG" in env:
        config_file = env["ROOTLESS_CONFIG"]
    from rootless.runtime.userns import is_single_threaded

    if attach is not None or is_single_threaded():
        # The CLI has the engine imported already: fork instead of starting Python again (the
        # monitor then re-executes itself as the lean watcher once the container runs).
        _fork_monitor(config, config_file, cid, w, err, attach, rec)
        return _read_status(store, cid, r, timeout)
    try:
        p = subprocess.Popen(
            [sys.executable, "-S", "-c", BOOT, json.dumps(sys.path), config_file or "", cid, str(w)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, pass_fds=(w,),
            start_new_session=True, close_fds=True, cwd="/",
        )
    except OSError as e:
        os.close(r)
        os.close(w)
        os.close(err)
        raise RootlessError(f"start the monitor of `{cid[:12]}`: {e.strerror}", "check that Python can run")
    os.close(w)
    os.close(err)
    p.wait()  # the first fork exits at once; the monitor itself is its child
    return _read_status(store, cid, r, timeout)


def _fork_monitor(config, config_file: Optional[str], cid: str, w: int, err: int, attach=None,
                  rec=None) -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
    import gc

    gc.freeze()  # the collector must not touch (and so copy) every page the two of us share after the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the monitor
        code = 1
        try:
            if attach is not None:
                attach.close_client()  # the CLI's ends: its stdin must end when the CLI's does
            os.setsid()  # no controlling terminal: closing the caller's does not reach us
            # A double fork, so that the monitor is nobody's zombie-to-be; an attached CLI instead
            # reaps its monitor (one fork less on the way of every foreground run).
            if attach is None and os.fork() > 0:
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(err, 2)
            os.close(null)
            os.close(err)
            os.chdir("/")
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(s, signal.SIG_DFL)
            os.set_inheritable(w, False)
            try:
                from rootless.linux import syscalls as sc

                sc.set_name("rootless:monitor")
            except Exception:  # noqa: BLE001 - a cosmetic name
                pass
            code = start_mode(config_file or "", cid, w, cfg=config, attach=attach, rec_in=rec)
        except BaseException:  # noqa: BLE001 - never return into the CLI's code
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    os.close(err)
    if attach is not None:
        attach.close_monitor()
        attach.monitor_pid = pid
        return
    while True:
        try:
            os.waitpid(pid, 0)  # the first fork exits at once; the monitor is its child
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def _read_status(store, cid: str, r: int, timeout: float) -> int:
    import select

    from rootless.errors import EXIT_ENGINE, RootlessError

    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RootlessError(f"start container `{cid[:12]}`: the monitor did not answer in {timeout:.0f} s",
                                    f"see {store.path(cid, 'monitor.log')}")
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(r)
    try:
        msg = json.loads(buf.decode().splitlines()[0]) if buf.strip() else {}
    except ValueError:
        msg = {}
    if msg.get("ok"):
        return int(msg.get("pid") or 0)
    if not msg:
        raise RootlessError(f"start container `{cid[:12]}`: the monitor exited without saying why",
                            f"see {store.path(cid, 'monitor.log')}", exit_code=EXIT_ENGINE)
    raise RootlessError(msg.get("message") or "start container", msg.get("hint") or "",
                        exit_code=int(msg.get("exit_code") or EXIT_ENGINE))
