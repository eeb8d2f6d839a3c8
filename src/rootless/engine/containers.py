"""Container lifecycle beyond create/start/rm: detach, stop, kill, wait, rename, ps rows, inspect, top.

The engine's layer (it may use engine, state, logs, monitor). A detached container's parent is its
monitor (rootless.engine.monitor); the CLI commands here only signal processes and read or update records,
under the container's lock where a record is changed, and never while waiting for an exit (the
monitor needs that lock to record it).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from rootless import state as st
from rootless.engine import events
from rootless.engine.hostflags import parse_log_config, parse_restart  # noqa: F401  (callers of containers.*)
from rootless.errors import NotFound, RootlessError, UsageError
from rootless.procs import parse_signal  # noqa: F401  (callers of containers.*)
from rootless.units import human_duration, human_size

PRIVATE_STATE = ("PidStartTime", "MonitorPid", "MonitorStartTime")


# --- detach ------------------------------------------------------------------------------------------


def start_detached(config, config_file: Optional[str], store: st.Store, rec: st.Record) -> str:
    """Start ``rec`` under a monitor; return once it runs (or raise why it did not)."""
    from rootless.engine import monitor

    with store.lock(rec["Id"]):
        cur = store.load(rec["Id"])
        if cur["State"].get("Running") or cur["State"].get("Restarting"):
            return rec["Id"]  # docker: starting a running container is a no-op
    monitor.launch(config, config_file, rec["Id"])
    return rec["Id"]


def restart_candidates(config) -> List[str]:
    """`start --all-restart`: the ids of the containers with restart policy always, or unless-stopped
    and not stopped by hand, that are not running (after a reboot: what docker's daemon starts)."""
    from rootless.engine.monitor import STOP_MARKER

    store = st.Store(config.data_root)
    out = []
    for rec in store.list():
        policy = ((rec.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        s = rec.get("State") or {}
        if s.get("Running") or s.get("Restarting") or policy not in ("always", "unless-stopped"):
            continue
        if policy == "unless-stopped" and os.path.exists(store.path(rec["Id"], STOP_MARKER)):
            continue
        out.append(rec["Id"])
    return out


# --- state ---------------------------------------------------------------------------------------------


def raw_state(store: st.Store, cid: str) -> Optional[Dict[str, Any]]:
    """The saved State, without the liveness refresh (None when the container is gone)."""
    try:
        with open(store.path(cid, "config.json"), "rb") as f:
            return json.loads(f.read()).get("State") or {}
    except (OSError, ValueError):
        return None


def monitor_alive(s: Dict[str, Any]) -> bool:
    return st.is_alive({"Pid": s.get("MonitorPid"), "PidStartTime": s.get("MonitorStartTime")}, container=False)


def wait_stopped(store: st.Store, cid: str, timeout: Optional[float] = None, poll: float = 0.05) -> bool:
    """Until the saved record says stopped (its monitor wrote the exit), or the process and its
    monitor are both gone. False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    gone_since: Optional[float] = None
    while True:
        s = raw_state(store, cid)
        if s is None or not (s.get("Running") or s.get("Restarting")):
            return True
        if not st.is_alive(s):
            if s.get("Restarting") and monitor_alive(s):
                gone_since = None
            elif not monitor_alive(s):
                return True
            else:  # exited; its monitor is writing the record now
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > 5.0:
                    return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll)


def _name(rec: st.Record) -> str:
    return (rec.get("Name") or rec["Id"]).lstrip("/")


def _mark_stop(store: st.Store, cid: str) -> None:
    from rootless.engine.monitor import STOP_MARKER

    try:
        with open(store.path(cid, STOP_MARKER), "w"):
            pass
    except OSError:
        pass


def stop(config, ref: str, timeout: Optional[int] = None, sig: Optional[str] = None) -> str:
    """docker stop: the StopSignal, SIGKILL after ``timeout`` s (default 10, -1: wait forever)."""
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    cid = rec["Id"]
    s = rec["State"]
    _mark_stop(store, cid)  # no restart after this, whatever the policy says
    if not (s.get("Running") or s.get("Restarting")):
        return cid
    if s.get("Paused"):
        _thaw_quietly(config, rec)
    signum = parse_signal(sig or rec["Config"].get("StopSignal") or "SIGTERM")
    if timeout is None:
        timeout = int(rec["Config"].get("StopTimeout") or 10)
    # The pid is read again at each step: a restart that raced with the mark (its monitor was past
    # its last look at it) runs under a new pid, which gets the signal too.
    deadline = None if timeout < 0 else time.monotonic() + float(timeout)
    signalled = 0
    while True:
        pid = _live_pid(store, cid)
        if pid and pid != signalled:
            _signal(pid, signum)
            events.container(config, rec, "kill", signal=int(signum))  # docker's stop: kill, die, stop
            signalled = pid
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        if wait_stopped(store, cid, 0.5 if left is None else min(0.5, left)):
            events.container(config, rec, "stop")
            return cid
    pid = _live_pid(store, cid)
    if pid:
        _signal(pid, signal.SIGKILL)
        events.container(config, rec, "kill", signal=int(signal.SIGKILL))
    if not wait_stopped(store, cid, 30.0):
        raise RootlessError(f"stop container `{_name(rec)}`: it is still running after SIGKILL",
                            "see `rootless ps -a`; `rootless rm -f` removes it")
    events.container(config, rec, "stop")
    return cid


def _live_pid(store: st.Store, cid: str) -> int:
    """The container's process as its record names it now, when that process is alive."""
    s = raw_state(store, cid) or {}
    return int(s.get("Pid") or 0) if s.get("Running") and st.is_alive(s) else 0


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as e:
        raise RootlessError(f"signal process `{pid}`: {e.strerror}", "is it still this container's process?")


def kill(config, ref: str, sig: str = "SIGKILL") -> str:
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    s = rec["State"]
    signum = parse_signal(sig)
    if not s.get("Running") or not st.is_alive(s):
        raise RootlessError(f"kill container `{_name(rec)}`: it is not running", "start it first", exit_code=1)
    _signal(int(s["Pid"]), signum)
    events.container(config, rec, "kill", signal=int(signum))
    return rec["Id"]


WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def wait(config, ref: str, condition: str = "not-running", timeout: Optional[float] = None,
         poll: float = 0.05) -> int:
    """docker's wait conditions; the container's exit code (see rootless.engine.wait)."""
    if condition not in WAIT_CONDITIONS:
        raise UsageError(f"wait for container `{ref}`: unknown condition `{condition}`",
                         "use not-running, next-exit or removed")
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    cid = rec["Id"]
    deadline = None if timeout is None else time.monotonic() + timeout

    def timed_out() -> bool:
        return deadline is not None and time.monotonic() > deadline

    def expired() -> RootlessError:
        return RootlessError(f"wait for container `{_name(rec)}`: still not {condition} after {timeout:g}s",
                             "give a longer timeout", exit_code=1)

    last = int((rec.get("State") or {}).get("ExitCode") or 0)
    if condition == "not-running":
        if not wait_stopped(store, cid, timeout, poll):
            raise expired()
        try:
            return int(store.load(cid)["State"].get("ExitCode") or 0)
        except NotFound:
            return last
    if condition == "removed":
        while os.path.isdir(store.dir(cid)):
            s = raw_state(store, cid)
            if s is not None:
                last = int(s.get("ExitCode") or 0)
            if timed_out():
                raise expired()
            time.sleep(poll)
        return last
    # next-exit: an exit recorded after now. Each exit writes FinishedAt (start resets it to the
    # zero time), so a FinishedAt other than the one seen now and the zero time is a new exit.
    base = (raw_state(store, cid) or {}).get("FinishedAt", st.ZERO_TIME)
    gone_since: Optional[float] = None
    while True:
        s = raw_state(store, cid)
        if s is None:
            return last  # removed (--rm) before its exit was recorded: the last code we saw
        fin = s.get("FinishedAt", st.ZERO_TIME)
        if fin not in (base, st.ZERO_TIME):
            return int(s.get("ExitCode") or 0)
        last = int(s.get("ExitCode") or 0)
        if s.get("Running") and not st.is_alive(s) and not monitor_alive(s):
            # nobody is left to record the exit: the record, refreshed, says what is known
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > 5.0:
                try:
                    return int(store.load(cid)["State"].get("ExitCode") or 0)
                except NotFound:
                    return last
        else:
            gone_since = None
        if timed_out():
            raise expired()
        time.sleep(poll)


def rename(config, ref: str, new: str) -> None:
    store = st.Store(config.data_root)
    name = st.check_name(new)
    rec = store.resolve(ref)
    with store.global_lock():
        other = store._find_by_name(name)
        if other is not None and other["Id"] != rec["Id"]:
            raise RootlessError(f"rename container `{_name(rec)}`: the name `{name}` is already in use by container "
                                f"`{other['Id'][:12]}`", "choose another name, or remove that container", exit_code=1)
        with store.lock(rec["Id"]):
            cur = store.load(rec["Id"])
            cur["Name"] = "/" + name
            store.save(cur)
    events.container(config, cur, "rename", oldName=rec["Name"])


# --- pause ----------------------------------------------------------------------------------------------


def _cgroup(config, rec: st.Record):
    data = (rec.get("Rootless") or {}).get("Cgroup")
    if not data:
        raise RootlessError(
            f"pause container `{_name(rec)}`: this host has no usable cgroup v2 freezer for it "
            "(the container has no cgroup of its own)",
            "pause needs cgroup v2 with a delegated subtree (systemd's user@.service Delegate=yes); "
            "see `rootless info` for the cgroup setup",
        )
    from rootless import cgroups

    return cgroups.CgroupHandle.from_json(data)


def pause(config, ref: str, freeze: bool = True) -> str:
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    s = rec["State"]
    if not s.get("Running"):
        raise RootlessError(f"{'pause' if freeze else 'unpause'} container `{_name(rec)}`: it is not running",
                            "start it first", exit_code=1)
    if freeze and s.get("Paused"):
        raise RootlessError(f"pause container `{_name(rec)}`: it is already paused", "unpause it", exit_code=1)
    if not freeze and not s.get("Paused"):
        raise RootlessError(f"unpause container `{_name(rec)}`: it is not paused", "pause it first", exit_code=1)
    cg = _cgroup(config, rec)
    cg.freeze() if freeze else cg.thaw()
    with store.lock(rec["Id"]):
        cur = store.load(rec["Id"])
        cur["State"].update(Paused=freeze, Status="paused" if freeze else "running")
        store.save(cur)
    events.container(config, cur, "pause" if freeze else "unpause")
    return rec["Id"]


def _thaw_quietly(config, rec: st.Record) -> None:
    try:
        _cgroup(config, rec).thaw()
    except (RootlessError, OSError):
        pass


# --- ps -------------------------------------------------------------------------------------------------


def parse_time(text: str) -> float:
    from rootless import timefmt

    return timefmt.parse(text) or 0.0


def state_name(rec: st.Record) -> str:
    s = rec.get("State") or {}
    return s.get("Status") or "created"


def status_text(rec: st.Record, now: Optional[float] = None) -> str:
    now = time.time() if now is None else now
    s = rec.get("State") or {}
    status = s.get("Status") or "created"
    if status == "restarting" or s.get("Restarting"):
        return f"Restarting ({s.get('ExitCode', 0)}) {human_duration(now - parse_time(s.get('FinishedAt', '')))} ago"
    if s.get("Running"):
        up = f"Up {human_duration(now - parse_time(s.get('StartedAt', '')))}"
        return up + " (Paused)" if s.get("Paused") else up
    if status == "created" or s.get("StartedAt", st.ZERO_TIME) == st.ZERO_TIME and status != "exited":
        return "Created"
    if status == "dead":
        return "Dead"
    fin = parse_time(s.get("FinishedAt", ""))
    ago = f" {human_duration(now - fin)} ago" if fin else ""
    return f"Exited ({s.get('ExitCode', 0)}){ago}"


def command_text(rec: st.Record) -> str:
    """docker's ps COMMAND: Path and Args, an argument with a space in single quotes."""
    args = [f"'{a}'" if " " in a else a for a in (rec.get("Args") or [])]
    return " ".join([rec.get("Path") or ""] + args)


def ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def ports_text(rec: st.Record) -> str:
    ports = ((rec.get("NetworkSettings") or {}).get("Ports")) or {}
    out = []
    for cport, binds in sorted(ports.items()):
        if not binds:
            out.append(cport)
            continue
        for b in binds:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{cport}")
    return ", ".join(out)


def dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path, onerror=lambda e: None):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def ps_row(config, rec: st.Record, no_trunc: bool = False, size: bool = False, now: Optional[float] = None) -> Dict[str, Any]:
    cmd = command_text(rec)
    c = rec.get("Config") or {}
    labels = c.get("Labels") or {}
    row = {
        "ID": rec["Id"] if no_trunc else rec["Id"][:12],
        "Image": c.get("Image") or rec.get("Image", ""),
        "Command": json.dumps(cmd if no_trunc else ellipsis(cmd, 20), ensure_ascii=False),
        "CreatedAt": _created_at(rec.get("Created", "")),
        "RunningFor": human_duration((time.time() if now is None else now) - parse_time(rec.get("Created", ""))) + " ago",
        "Ports": ports_text(rec),
        "State": state_name(rec),
        "Status": status_text(rec, now),
        "Size": "",
        "Names": _name(rec),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in (rec.get("Mounts") or [])),
        "Networks": rec.get("HostConfig", {}).get("NetworkMode", ""),
        "LocalVolumes": str(sum(1 for m in (rec.get("Mounts") or []) if m.get("Type") == "volume")),
    }
    if size:
        upper = ((rec.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir") or ""
        rw = dir_size(upper) if upper else 0
        virt = rw
        try:
            from rootless.image.store import ImageStore

            img = ImageStore(config.data_root).get(rec.get("Image", ""))
            virt += img.size if img is not None else 0
        except Exception:  # noqa: BLE001 - a size is best effort
            pass
        row["Size"] = f"{human_size(rw)} (virtual {human_size(virt)})"
    return row


def _created_at(text: str) -> str:
    t = parse_time(text)
    if not t:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(t))


def matches(rec: st.Record, filters: Dict[str, List[str]], config=None) -> bool:
    s = rec.get("State") or {}
    for key, values in filters.items():
        ok = False
        for v in values:
            if key == "status":
                ok = ok or state_name(rec) == v
            elif key == "name":
                import re

                try:
                    ok = ok or re.search(v, _name(rec)) is not None
                except re.error:
                    ok = ok or v in _name(rec)
            elif key == "id":
                ok = ok or rec["Id"].startswith(v)
            elif key == "label":
                k, sep, val = v.partition("=")
                labels = (rec.get("Config") or {}).get("Labels") or {}
                ok = ok or (k in labels and (not sep or labels[k] == val))
            elif key == "exited":
                ok = ok or (state_name(rec) == "exited" and str(s.get("ExitCode")) == v)
            elif key == "ancestor":
                ok = ok or _ancestor(rec, v, config)
            else:
                raise UsageError(f"invalid filter `{key}`",
                                 "use status=, name=, label=, ancestor=, id= or exited=")
        if not ok:
            return False
    return True


def _ancestor(rec: st.Record, ref: str, config) -> bool:
    img = rec.get("Image") or ""
    if ref == (rec.get("Config") or {}).get("Image"):
        return True
    r = ref[7:] if ref.startswith("sha256:") else ref
    if len(r) >= 4 and img[7:].startswith(r):
        return True
    if config is not None:
        try:
            from rootless.image.store import ImageStore

            found = ImageStore(config.data_root).lookup(ref)
            return found is not None and found.id == img
        except Exception:  # noqa: BLE001
            return False
    return False


# --- inspect --------------------------------------------------------------------------------------------


def inspect_data(rec: st.Record) -> Dict[str, Any]:
    """docker's ContainerJSON: the record, with the keys docker always has, without ours."""
    d = json.loads(json.dumps(rec))
    s = d.setdefault("State", st.new_state())
    for k in PRIVATE_STATE:
        s.pop(k, None)
    d.setdefault("RestartCount", 0)
    d.setdefault("Mounts", [])
    d.setdefault("MountLabel", "")
    d.setdefault("ProcessLabel", "")
    d.setdefault("AppArmorProfile", "")
    d.setdefault("ExecIDs", None)
    hc = d.setdefault("HostConfig", {})
    hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    hc.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    hc.setdefault("Binds", None)
    d.setdefault("NetworkSettings", {"Bridge": "", "SandboxID": "", "Ports": {}, "Networks": {}})
    if (hc.get("LogConfig") or {}).get("Type") == "none":
        d["LogPath"] = ""
    order = ["Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
             "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel",
             "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings"]
    out = {k: d[k] for k in order if k in d}
    out.update({k: v for k, v in d.items() if k not in out})
    return out


# --- top ------------------------------------------------------------------------------------------------


def container_pids(init_pid: int, proc: str = "/proc") -> List[int]:
    """The processes in the container's pid namespace: its init's descendants, and those (exec'd)
    whose pid namespace we can read and is the init's."""
    try:
        ns = os.readlink(f"{proc}/{init_pid}/ns/pid")
    except OSError:
        ns = None
    parents: Dict[int, int] = {}
    same: List[int] = []
    for n in os.listdir(proc):
        if not n.isdigit():
            continue
        pid = int(n)
        try:
            with open(f"{proc}/{pid}/stat", "rb") as f:
                data = f.read()
            parents[pid] = int(data[data.rfind(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ns is not None:
            try:
                if os.readlink(f"{proc}/{pid}/ns/pid") == ns:
                    same.append(pid)
            except OSError:
                pass
    out = {init_pid} | set(same)
    changed = True
    while changed:
        changed = False
        for pid, pp in parents.items():
            if pp in out and pid not in out:
                out.add(pid)
                changed = True
    return sorted(p for p in out if p in parents)


def top_rows(init_pid: int, proc: str = "/proc") -> List[List[str]]:
    """UID PID PPID C STIME TTY TIME CMD, as `ps -ef` prints them (docker top's default)."""
    import pwd

    hz = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"{proc}/stat") as f:
            btime = next(int(x.split()[1]) for x in f if x.startswith("btime"))
    except (OSError, StopIteration):
        btime = 0
    rows = [["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]]
    for pid in container_pids(init_pid, proc):
        try:
            with open(f"{proc}/{pid}/stat", "rb") as f:
                data = f.read()
            with open(f"{proc}/{pid}/cmdline", "rb") as f:
                cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
            uid = os.stat(f"{proc}/{pid}").st_uid
        except OSError:
            continue
        comm = data[data.find(b"(") + 1: data.rfind(b")")].decode("utf-8", "replace")
        f = data[data.rfind(b")") + 2:].split()
        ppid, utime, stime, start = int(f[1]), int(f[11]), int(f[12]), int(f[19])
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        cpu = (utime + stime) // hz
        started = time.strftime("%H:%M", time.localtime(btime + start / hz))
        rows.append([user, str(pid), str(ppid), "0", started, "?",
                     f"{cpu // 3600:02d}:{cpu // 60 % 60:02d}:{cpu % 60:02d}", cmdline or f"[{comm}]"])
    return rows


# --- exec -----------------------------------------------------------------------------------------------
# The engine's part: find the container, build the runtime's ExecSpec from its config, run it
# (rootless.runtime.exec), return the exit code. The face brings the stdio and the terminal handling.


class ExecOptions:
    def __init__(self, cmd: List[str], env: Optional[List[str]] = None, workdir: str = "", user: str = "",
                 tty: bool = False, interactive: bool = False, detach: bool = False, privileged: bool = False):
        self.cmd, self.env, self.workdir, self.user = list(cmd), list(env or []), workdir, user
        self.tty, self.interactive, self.detach, self.privileged = tty, interactive, detach, privileged


def _exec_spec(store: st.Store, rec: st.Record) -> Dict[str, Any]:
    """The container's own process settings (caps, rlimits, no-new-privileges), from its bundle."""
    try:
        with open(store.path(rec["Id"], os.path.join("bundle", "config.json")), "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        from rootless.runtime import DEFAULT_CAPABILITIES

        caps = list(DEFAULT_CAPABILITIES)
        return {"process": {"env": list(rec["Config"].get("Env") or []), "cwd": rec["Config"].get("WorkingDir") or "/",
                            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}}


def exec_in(config, ref: str, opts: ExecOptions, stdio=None, on_pid: Optional[Callable[[int], None]] = None,
            attach: Optional[Callable[[Any], None]] = None, proc: str = "/proc") -> int:
    """Run ``opts.cmd`` in the running container ``ref``; its exit code (or 0 with -d).

    ``stdio`` (runtime.Stdio; its ``tty`` is ``opts.tty``) are the command's streams; ``on_pid``
    gets its pid as soon as it is known (the face forwards signals to it); ``attach`` is called
    with the started runtime.exec.ExecProcess (the face copies its pty or pipes) before we wait."""
    from rootless.runtime import Stdio
    from rootless.runtime import exec as rexec

    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    s = rec["State"]
    name = _name(rec)
    if not s.get("Running") or not st.is_alive(s, proc):
        raise RootlessError(f"exec in container `{name}`: it is not running", "start it first", exit_code=1)
    if s.get("Paused"):
        raise RootlessError(f"exec in container `{name}`: it is paused", "unpause it first", exit_code=1)
    pid = int(s["Pid"])
    spec = _exec_spec(store, rec)
    process = dict(spec.get("process") or {})
    from rootless.oci.spec import merge_env

    process["env"] = merge_env(list(process.get("env") or []), opts.env)
    process["args"] = list(opts.cmd)
    process["terminal"] = bool(opts.tty)
    if opts.workdir:
        process["cwd"] = opts.workdir
    if opts.privileged:
        from rootless.runtime.caps import NAMES

        process["capabilities"] = {k: list(NAMES) for k in ("bounding", "effective", "permitted")}
    program = None
    seccomp = (spec.get("linux") or {}).get("seccomp")
    if seccomp:  # the container's filter, compiled (or read from the cache) before we fork: docker filters exec too
        from rootless.linux import seccomp as lsec

        program = lsec.program(seccomp)
    try:
        ns_paths = rexec.namespaces_to_join(pid, proc)
    except PermissionError:
        raise RootlessError(f"exec in container `{name}`: cannot open its namespaces (its main process runs as "
                            "another user)", "run the container's main process as root (the default), "
                            "or use --init")
    if stdio is None:
        stdio = Stdio()
    stdio = Stdio(stdio.stdin, stdio.stdout, stdio.stderr, bool(opts.tty), stdio.winsize_from)
    xspec = rexec.ExecSpec(pid, process, user=opts.user or rec["Config"].get("User") or "", set_home=bool(opts.user),
                           stdio=stdio, detach=opts.detach, seccomp=program, proc=proc)
    xid, what = os.urandom(32).hex(), ": " + " ".join(opts.cmd)  # docker's exec events name the command
    events.container(config, rec, "exec_create" + what, execID=xid)
    started = rexec.spawn(xspec, ns_paths, on_fork=lambda: _join_cgroup(rec), on_pid=on_pid)
    events.container(config, rec, "exec_start" + what, execID=xid)
    if opts.detach:
        return 0
    if attach is not None:
        attach(started)
    code = started.wait()
    events.container(config, rec, "exec_die", execID=xid, exitCode=code)
    return code


def _join_cgroup(rec: st.Record) -> None:  # pragma: no cover - runs in the forked child
    """The exec'd command counts against the container's limits (its cgroup, when it has one)."""
    data = (rec.get("Rootless") or {}).get("Cgroup")
    if not data:
        return
    try:
        from rootless import cgroups

        cgroups.CgroupHandle.from_json(data).add_pid(os.getpid())
    except Exception:  # noqa: BLE001 - a container without its cgroup still runs the command
        pass


# --- ps, top, port, logs, update, prune: what the commands did themselves before ------------------------


def select(config, all_: bool = False, filters: Optional[Dict[str, List[str]]] = None, last: int = -1,
           latest: bool = False) -> List[st.Record]:
    """The records `ps` shows, newest first: running ones (all with ``all_``, ``last`` or a status
    filter), those passing ``filters`` (docker's ps filters), at most ``last`` (1 with ``latest``)."""
    recs = st.Store(config.data_root).list()
    recs.sort(key=lambda r: r.get("Created", ""), reverse=True)
    if latest:
        last = 1
    filters = filters or {}
    show_all = all_ or last > 0 or "status" in filters or "exited" in filters
    if not show_all:
        recs = [r for r in recs if (r.get("State") or {}).get("Running") or (r.get("State") or {}).get("Restarting")]
    recs = [r for r in recs if matches(r, filters, config)]
    if last > 0:
        recs = recs[:last]
    return recs


def top(config, ref: str, proc: str = "/proc") -> List[List[str]]:
    """The processes of running container ``ref``: a header row and one row per process (top_rows)."""
    rec = st.Store(config.data_root, proc).resolve(ref)
    s = rec["State"]
    if not s.get("Running") or not st.is_alive(s, proc):
        raise RootlessError(f"list the processes of `{_name(rec)}`: it is not running", "start it first", exit_code=1)
    return top_rows(int(s["Pid"]), proc)


def ports(config, ref: str, port: Optional[str] = None) -> List[Tuple[str, str]]:
    """(container port as ``80/tcp``, host address as ``0.0.0.0:8080``) for each published port of
    ``ref``, sorted; only ``port`` (``80`` means ``80/tcp``) when given, which must be published."""
    rec = st.Store(config.data_root).resolve(ref)
    published = (rec.get("NetworkSettings") or {}).get("Ports") or {}
    want = None
    if port:
        want = port if "/" in port else port + "/tcp"
        if want not in published:
            raise RootlessError(f"find port `{port}` of `{_name(rec)}`: no public port published",
                                "publish it with -p when you run the container", exit_code=1)
    out = []
    for cport, binds in sorted(published.items()):
        if want and cport != want:
            continue
        for b in binds or []:
            out.append((cport, f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"))
    return out


def logs(config, ref: str, since_ns: int = 0, until_ns: int = 0, tail: int = -1, follow: bool = False) -> Iterator[Any]:
    """The entries (rootless.logs.Record: stream, text, time_ns) of ``ref``'s json-file log, across
    rotated files; with ``follow`` (and no ``until_ns``) new ones too, until the container stops."""
    from rootless import logs as logfiles

    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    lc = (rec.get("HostConfig") or {}).get("LogConfig") or {}
    if lc.get("Type") == "none":
        raise RootlessError(f"read the logs of `{_name(rec)}`: configured logging driver does not support reading",
                            "the container was created with --log-driver none")
    path = store.log_path(rec["Id"])  # not the record's LogPath: a path from a state file is not trusted
    if not follow or until_ns:
        return iter(logfiles.read(path, since_ns=since_ns, until_ns=until_ns, tail=tail))
    cid = rec["Id"]
    seen_stopped = [False]

    def stopped() -> bool:
        # the monitor writes the last output before it records the exit: after the first time we
        # see the container stopped, one more read drains what is left, then we end
        if seen_stopped[0]:
            return True
        try:
            s = store.load(cid)["State"]
        except RootlessError:
            seen_stopped[0] = True
            return False
        if not (s.get("Running") or s.get("Restarting")):
            seen_stopped[0] = True
        return False

    if not os.path.exists(path) and os.path.isdir(os.path.dirname(path)):
        open(path, "ab").close()
    return logfiles.follow(path, since_ns=since_ns, tail=tail, stop=stopped)


def update(config, ref: str, changes: Any = None, restart: Optional[Dict[str, Any]] = None) -> str:
    """Apply ``changes`` (a limits.Limits with the fields to change) and ``restart`` (a RestartPolicy
    dict) to container ``ref``: a running container's cgroup at once, the record always (a stopped
    container gets them at its next start). Returns its id."""
    from rootless import cgroups, limits
    from rootless.engine.lifecycle import _limit_fields

    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    name = _name(rec)
    with store.lock(rec["Id"]):
        rec = store.load(rec["Id"])
        hc = rec.setdefault("HostConfig", {})
        own = rec.setdefault("Rootless", {})
        if restart is not None and restart["Name"] not in ("no", "") and hc.get("AutoRemove"):
            raise RootlessError(f"update container `{name}`: Restart policy cannot be updated because AutoRemove "
                                "is enabled for the container", "remove it and run it again without --rm")
        new = None
        if changes:
            old = limits.Limits.from_dict(own.get("Limits") or {})
            s = rec.get("State") or {}
            cg_data = own.get("Cgroup")
            if s.get("Running") and st.is_alive(s) and cg_data:
                handle = cgroups.CgroupHandle.from_json(cg_data)
                try:
                    new = handle.update(changes)
                except RootlessError as e:
                    raise RootlessError(f"update container `{name}`: {e.message}", e.hint) from None
                own["Cgroup"] = handle.to_json()
            else:
                # stopped (saved, applied at the next start), or running without a cgroup (a
                # cgroup v1 / hybrid host): either way, limits this host cannot enforce fail here
                try:
                    cgroups.Manager.check(changes)
                except RootlessError as e:
                    raise RootlessError(f"update container `{name}`: {e.message}", e.hint) from None
                if s.get("Running") and st.is_alive(s):
                    raise RootlessError(f"update container `{name}`: it runs without a cgroup of its own",
                                        "stop it, update it, then start it: a stopped container gets its new limits when it starts")
                new = old.merged(changes)
            own["Limits"] = new.to_dict()
            hc.update(_limit_fields(own["Limits"]))
        if restart is not None:
            hc["RestartPolicy"] = restart
        store.save(rec)
    return rec["Id"]


def remove(config, ref: str, force: bool = False, volumes: bool = False, *, reporter) -> str:
    """`rm`: the container (its writable layer, record, logs, files); with ``volumes`` its anonymous
    volumes too (named ones stay, as docker). Returns its id."""
    from rootless.engine import lifecycle

    rec = st.Store(config.data_root).resolve(ref) if volumes else None
    cid = lifecycle.remove(config, ref, force=force, reporter=reporter)
    if rec is not None:
        from rootless.engine import volumes as vols

        vols.remove_anonymous(config, rec)
    return cid


def prune(config, until: Optional[float] = None, *, reporter) -> Tuple[List[str], int]:
    """`container prune`: remove every stopped container (created before ``until``, unix seconds,
    when given). Returns (the ids removed, the bytes of their writable layers)."""
    from rootless.engine import lifecycle

    removed: List[str] = []
    reclaimed = 0
    for rec in st.Store(config.data_root).list():
        s = rec.get("State") or {}
        if s.get("Running") or s.get("Restarting"):
            continue
        if until is not None and parse_time(rec.get("Created", "")) >= until:
            continue
        upper = ((rec.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir") or ""
        size = dir_size(upper) if upper else 0
        try:
            lifecycle.remove(config, rec["Id"], reporter=reporter)
        except Exception:  # noqa: BLE001 - it started meanwhile: keep it
            continue
        removed.append(rec["Id"])
        reclaimed += size
    return removed, reclaimed


def stats(config, refs: List[str], all_: bool = False, missing_ok: bool = False) -> List[Tuple[Any, Optional[str]]]:
    """(stats.Sample, the ref as given or None) for ``refs``, or for the running containers (every
    one with ``all_``) newest first; with ``missing_ok`` a ref that no longer exists is left out."""
    from rootless.engine import stats as cstats

    store = st.Store(config.data_root)
    if refs:
        pairs = []
        for r in refs:
            try:
                pairs.append((store.resolve(r), r))
            except NotFound:
                if not missing_ok:
                    raise
        return [(cstats.sample(rec), r) for rec, r in pairs]
    recs = store.list()
    recs.sort(key=lambda r: r.get("Created", ""), reverse=True)
    if not all_:
        recs = [r for r in recs if (r.get("State") or {}).get("Running")]
    return [(cstats.sample(rec), None) for rec in recs]
