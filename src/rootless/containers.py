"""Container lifecycle beyond create/start/rm: detach, stop, kill, wait, rename, ps rows, inspect, top.

The engine's layer (it may use engine, state, logs, monitor). A detached container's parent is its
monitor (rootless.monitor); the CLI commands here only signal processes and read or update records,
under the container's lock where a record is changed, and never while waiting for an exit (the
monitor needs that lock to record it).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any, Dict, List, Optional

from rootless import state as st
from rootless.errors import NotFound, RootlessError, UsageError
from rootless.hostflags import parse_log_config, parse_restart  # noqa: F401  (callers of containers.*)
from rootless.procs import parse_signal  # noqa: F401  (callers of containers.*)
from rootless.procs import wait as _waitpid
from rootless.units import human_duration, human_size

PRIVATE_STATE = ("PidStartTime", "MonitorPid", "MonitorStartTime")


# --- detach ------------------------------------------------------------------------------------------


def start_detached(config, config_file: Optional[str], store: st.Store, rec: st.Record) -> str:
    """Start ``rec`` under a monitor; return once it runs (or raise why it did not)."""
    from rootless import monitor

    with store.lock(rec["Id"]):
        cur = store.load(rec["Id"])
        if cur["State"].get("Running") or cur["State"].get("Restarting"):
            return rec["Id"]  # docker: starting a running container is a no-op
    monitor.launch(config, config_file, rec["Id"])
    return rec["Id"]


def start_all_restart(config, config_file: Optional[str]) -> int:
    """`start --all-restart`: containers with restart policy always, or unless-stopped and not stopped
    by hand, that are not running (after a reboot: what docker's daemon does when it starts)."""
    import sys

    from rootless.cli import render_error
    from rootless.monitor import STOP_MARKER

    store = st.Store(config.data_root)
    status = 0
    for rec in store.list():
        policy = ((rec.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        s = rec.get("State") or {}
        if s.get("Running") or s.get("Restarting") or policy not in ("always", "unless-stopped"):
            continue
        if policy == "unless-stopped" and os.path.exists(store.path(rec["Id"], STOP_MARKER)):
            continue
        try:
            start_detached(config, config_file, store, rec)
        except RootlessError as e:
            render_error(e)
            status = 1
            continue
        sys.stdout.write(rec["Id"] + "\n")
    return status


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
    from rootless.monitor import STOP_MARKER

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
    pid = int(s.get("Pid") or 0)
    if pid and st.is_alive(s):
        _signal(pid, signum)
    if wait_stopped(store, cid, None if timeout < 0 else float(timeout)):
        return cid
    if pid and st.is_alive(s):
        _signal(pid, signal.SIGKILL)
    if not wait_stopped(store, cid, 30.0):
        raise RootlessError(f"stop container `{_name(rec)}`: it is still running after SIGKILL",
                            "see `rootless ps -a`; `rootless rm -f` removes it")
    return cid


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
    return rec["Id"]


def wait_exit(config, ref: str) -> int:
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    cid = rec["Id"]
    wait_stopped(store, cid)
    try:
        return int(store.load(cid)["State"].get("ExitCode") or 0)
    except NotFound:
        return int(rec["State"].get("ExitCode") or 0)


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

# setns order: the user namespace first (it gives the capabilities the others need), the pid
# namespace last (it only applies to children: hence the second fork). See setns(2).
EXEC_NS = ("user", "mnt", "uts", "ipc", "net", "cgroup", "pid")
_NS_FLAG = {"user": 0x10000000, "mnt": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "net": 0x40000000,
            "cgroup": 0x02000000, "pid": 0x20000000}


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


def exec_in(config, ref: str, opts: ExecOptions, proc: str = "/proc") -> int:
    """Run ``opts.cmd`` in the running container ``ref``; its exit code (or 0 with -d)."""
    import socket

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
    seccomp = (spec.get("linux") or {}).get("seccomp")
    if seccomp:  # the container's filter, compiled (or read from the cache) before we fork: docker filters exec too
        from rootless.linux import seccomp as lsec

        process["_seccomp"] = lsec.program(seccomp)
    # the namespaces to join: those of the init that differ from ours (--network host shares ours)
    ns_paths = []
    for ns in EXEC_NS:
        try:
            theirs = os.readlink(f"{proc}/{pid}/ns/{ns}")
        except FileNotFoundError:
            continue
        except PermissionError:
            raise RootlessError(f"exec in container `{name}`: cannot open its namespaces (its main process runs as "
                                "another user)", "run the container's main process as root (the default), "
                                "or use --init")
        try:
            ours = os.readlink(f"/proc/self/ns/{ns}")
        except OSError:
            ours = ""
        if theirs != ours:
            ns_paths.append((ns, f"{proc}/{pid}/ns/{ns}"))
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    relay = None
    if opts.tty or opts.detach:
        stdin_fd = 0 if opts.interactive else os.open(os.devnull, os.O_RDONLY)
    else:  # never a terminal of ours without -t: pipes that we copy (see start.PlainRelay)
        from rootless.commands.start import PlainRelay

        relay = PlainRelay(opts.interactive)
        stdin_fd = relay.fds[0] if relay.fds[0] is not None else 0
    import sys

    for f in (sys.stdout, sys.stderr):
        f.flush()
    a = os.fork()
    if a == 0:  # pragma: no cover - runs in the child
        parent_sock.close()
        if relay is not None:
            for target in (1, 2):
                if relay.fds[target] is not None:
                    os.dup2(relay.fds[target], target)
            for fd in list(relay.outs) + list(relay.ins.values()):
                os.close(fd)  # our ends: the command's stdin must end when ours does
        code = 125
        try:
            _before_joining(child_sock.fileno(), stdin_fd)
            _join_cgroup(rec)
            code = _exec_child(pid, ns_paths, process, opts, rec, child_sock, stdin_fd, proc)
        except BaseException as e:  # noqa: BLE001
            _send(child_sock, {"error": f"exec in container: {type(e).__name__}: {e}", "code": 125})
        os._exit(code)
    child_sock.close()
    if relay is not None:
        relay.started()
    elif stdin_fd != 0:
        os.close(stdin_fd)
    target = [0]
    master = None
    error = None
    from rootless.commands.start import SignalForwarder

    class _T:
        def kill(self, sig: int) -> None:
            if target[0]:
                try:
                    os.kill(target[0], sig)
                except OSError:
                    pass

    with SignalForwarder() as fwd:
        while True:
            try:
                data, fds, _f, _a = socket.recv_fds(parent_sock, 65536, 1)
            except InterruptedError:
                continue
            if not data:
                break
            msg = json.loads(data.decode())
            if "pid" in msg:
                target[0] = int(msg["pid"])
                fwd.set_target(_T())
            if "pty" in msg and fds:
                master = fds[0]
            if "error" in msg:
                error = msg
        parent_sock.close()
        if error is not None:
            if relay is not None:
                relay.close()
            _waitpid(a)
            raise RootlessError(error["error"], error.get("hint") or "check the command and the container",
                                exit_code=int(error.get("code") or 125))
        if opts.detach:
            _waitpid(a)
            return 0
        if master is not None:
            from rootless.commands.start import pump_tty

            pump_tty(master, opts.interactive)
        if relay is not None:
            done: List[int] = []

            def poll() -> Optional[int]:
                if not done:
                    got, status = os.waitpid(a, os.WNOHANG)
                    if got:
                        done.append(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
                return done[0] if done else None

            relay.run(poll)
            if done:
                return done[0]
        return _waitpid(a)


def _before_joining(*keep: int) -> None:  # pragma: no cover - runs in the forked child
    """Make this process unfit to spy on before it joins the container (DESIGN's security rules).

    Once in the container's pid namespace, its processes see ours; as the same uid, they could
    ptrace it or read its /proc/PID/environ (the CLI's environment: tokens) and its fds (runc's
    CVE-2016-9962). Not dumpable, only a process with CAP_SYS_PTRACE over our memory's (the host's)
    user namespace may; the command gets back a dumpable process of its own at execve. It needs
    nothing of our environment (its own comes from the container's config) nor of our fds."""
    from rootless.linux import syscalls as sc

    sc.set_dumpable(False)
    os.environ.clear()
    sc.scrub_environ()
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


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


def _send(sock, msg: Dict[str, Any], fd: Optional[int] = None) -> None:
    import socket

    try:
        socket.send_fds(sock, [json.dumps(msg).encode()], [fd] if fd is not None else [])
    except OSError:
        pass


def _exec_child(pid: int, ns_paths, process: Dict[str, Any], opts: ExecOptions, rec, sock, stdin_fd: int,
                proc: str) -> int:  # pragma: no cover - runs in the forked child
    """First child: join the namespaces and the root, fork into the pid namespace, relay the exit."""
    # everything the second child needs is imported now: after the chroot our sources are out of sight
    import types  # noqa: F401

    from rootless import userdb  # noqa: F401
    from rootless.linux import syscalls as sc
    from rootless.runtime import caps, init  # noqa: F401

    try:
        sc.set_name("rootless:exec")
    except OSError:
        pass
    fds = []
    for ns, path in ns_paths:
        try:
            fds.append((ns, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        except OSError as e:
            _send(sock, {"error": f"open namespace `{path}`: {e.strerror}", "code": 125})
            return 125
    root_fd = None
    for ns, fd in fds:
        try:
            sc.setns(fd, _NS_FLAG[ns])
        except OSError as e:
            _send(sock, {"error": f"join the container's `{ns}` namespace: {e.strerror}", "code": 125,
                         "hint": "is the container still running?"})
            return 125
        os.close(fd)
        if ns == "user":
            try:
                root_fd = os.open(f"{proc}/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                root_fd = None
    if root_fd is not None:  # after setns(mnt) we are at the namespace's root; make sure it is the container's
        os.fchdir(root_fd)
        os.chroot(".")
        os.close(root_fd)
    os.chdir("/")
    b = os.fork()
    if b == 0:
        try:
            _exec_final(process, opts, rec, sock, stdin_fd)
        except BaseException as e:  # noqa: BLE001
            err = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            _send(sock, {"error": err, "hint": getattr(e, "hint", None), "code": getattr(e, "exit_code", 125)})
            os._exit(int(getattr(e, "exit_code", 125) or 125))
        os._exit(125)
    _send(sock, {"pid": b})
    sock.close()
    if stdin_fd != 0:
        os.close(stdin_fd)
    if opts.detach:
        return 0
    import signal as sg

    for s_ in (sg.SIGINT, sg.SIGTERM, sg.SIGHUP, sg.SIGQUIT):
        sg.signal(s_, sg.SIG_IGN)  # our caller forwards signals to the command itself
    return _waitpid(b)


def _exec_final(process: Dict[str, Any], opts: ExecOptions, rec, sock, stdin_fd: int) -> None:  # pragma: no cover
    """Second child, in the container's pid namespace: user, caps, stdio, cwd, execve."""
    import types

    from rootless import userdb
    from rootless.linux import syscalls as sc
    from rootless.runtime import init as rinit

    if opts.detach:
        os.setsid()
    user_spec = opts.user or rec["Config"].get("User") or ""

    def read_file(p: str) -> Optional[bytes]:
        try:
            with open(p, "rb") as f:
                return f.read(1 << 20)
        except OSError:
            return None

    eu = userdb.resolve(user_spec, read_file)
    env = rinit._env(process.get("env") or [])
    if opts.user:
        env["HOME"] = eu.home or "/"
    env.setdefault("PATH", rinit.DEFAULT_PATH)
    process["env"] = [f"{k}={v}" for k, v in env.items()]
    process["user"] = {"uid": eu.uid, "gid": eu.gid, "additionalGids": list(eu.additional_gids),
                       "umask": (process.get("user") or {}).get("umask", 0o022)}
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise RootlessError(f"chdir to `{cwd}`: {e.strerror}", "give -w a directory of the container")
    slave = None
    if opts.tty:
        master, slave = os.openpty()  # the container's /dev/ptmx: a pty of its own devpts
        _send(sock, {"pty": True}, master)
        os.close(master)
    elif opts.detach:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    if not opts.tty and stdin_fd != 0:
        os.dup2(stdin_fd, 0)
    path = rinit._lookup(process["args"][0], env.get("PATH", rinit.DEFAULT_PATH))
    cfg = types.SimpleNamespace(spec={"process": process}, new_cgroup=False, seccomp=process.pop("_seccomp", None),
                                stdio=types.SimpleNamespace(stdin=None, stdout=None, stderr=None))
    ex = types.SimpleNamespace(pty_slave=slave, last_cap=sc.last_cap(), setgroups_allowed=rinit._setgroups_allowed())
    if not opts.tty and not opts.detach:
        try:
            os.setsid()
        except OSError:
            pass
    rinit._finalize(cfg, ex)
    for rl in process.get("rlimits") or []:
        try:
            rinit._rlimit(rl)
        except RootlessError:
            pass
    rinit._close_fds(keep=sock.fileno())
    try:
        os.execve(path, [str(a) for a in process["args"]], env)
    except OSError as e:
        import errno

        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        raise rinit._exec_error(process["args"][0], (e.strerror or str(e)).lower(), code)
