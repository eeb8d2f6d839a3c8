"""slirp4netns: user-mode networking for a container's network namespace, and its API socket.

slirp4netns(1): given the pid of a process in the target network namespace, it joins that
process's user and network namespaces (``--netns-type=pid``, the default, derives both from
/proc/PID/ns), creates ``tap0`` there and, with ``--configure``, brings up lo and tap0 with
10.0.2.100/24, the route via 10.0.2.2 and the DNS forwarder 10.0.2.3. It writes "1" to
``--ready-fd`` once configured. ``--disable-host-loopback`` stops 10.0.2.2 from reaching the
host's 127.0.0.1 (Podman's default: a container should not reach host-local services).

The API socket (JSON, one request per connection) adds and removes host port forwards.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from rootless import tools
from rootless.errors import RootlessError, ToolError

GUEST_ADDR = "10.0.2.100"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"
DEFAULT_MTU = 65520  # slirp4netns's maximum is 65521; Podman uses 65520 (fastest)
COMM = "slirp4netns"  # /proc/PID/comm of the process
SLIRP_HINT = "check that /dev/net/tun is usable (mode 0666) and that slirp4netns works: `slirp4netns --help`"

_features: Optional[Dict[str, bool]] = None


_FLAGS = ("enable-sandbox", "enable-seccomp", "disable-host-loopback", "netns-type", "userns-path", "enable-ipv6",
          "mtu", "api-socket", "cidr")


def features() -> Dict[str, bool]:
    """Which optional flags this slirp4netns supports (``--help`` lists them). Cached in the process
    and on disk (the user's cache folder), keyed by the binary's path, size, mtime and inode, so
    that a `run` does not start slirp4netns twice."""
    global _features
    if _features is not None:
        return _features
    from rootless import paths

    binary = tools.which("slirp4netns")
    key = ""
    cache = os.path.join(paths.cache_home(), "rootless", "slirp4netns-features.json")
    if binary:
        try:
            st = os.stat(binary)
            key = f"{binary}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
            with open(cache, encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("key") == key and isinstance(doc.get("features"), dict):
                _features = {k: bool(doc["features"].get(k)) for k in _FLAGS}
                return _features
        except (OSError, ValueError, AttributeError):
            pass
    res = tools.run(["slirp4netns", "--help"], check=False, timeout=10)
    text = (res.stdout + res.stderr).decode("utf-8", "replace")
    _features = {f: f"--{f}" in text for f in _FLAGS}
    if key:
        try:
            os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
            paths.atomic_write(cache, json.dumps({"key": key, "features": _features}).encode(), 0o600, durable=False)
        except OSError:
            pass  # a cache only
    return _features


@dataclass(frozen=True)
class SlirpOptions:
    mtu: int = DEFAULT_MTU
    allow_host_loopback: bool = False
    enable_ipv6: bool = False
    sandbox: bool = True  # --enable-sandbox --enable-seccomp where supported
    timeout: float = 10.0


@dataclass(frozen=True)
class Slirp:
    """A running slirp4netns: what teardown needs, from any process (saved as JSON)."""

    pid: int
    start_time: Optional[int]
    api_socket: str
    log: str

    def to_dict(self) -> Dict[str, Any]:
        return {"pid": self.pid, "start_time": self.start_time, "api_socket": self.api_socket, "log": self.log}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Slirp:
        st = d.get("start_time")
        return cls(int(d["pid"]), int(st) if st is not None else None, str(d["api_socket"]), str(d.get("log", "")))


# Popen objects of the slirp4netns we started in this process, so stop() can reap them.
_children: Dict[int, subprocess.Popen] = {}


def argv(pid: int, opts: SlirpOptions, api_socket: str, ready_fd: int, feats: Optional[Dict[str, bool]] = None,
         exit_fd: Optional[int] = None) -> List[str]:
    feats = features() if feats is None else feats
    a = ["slirp4netns", "--configure", f"--mtu={opts.mtu}", f"--ready-fd={ready_fd}", f"--api-socket={api_socket}"]
    if exit_fd is not None:
        a.append(f"--exit-fd={exit_fd}")
    if not opts.allow_host_loopback:
        a.append("--disable-host-loopback")
    if opts.enable_ipv6:
        a.append("--enable-ipv6")
    if opts.sandbox:
        # --enable-sandbox: a new mount namespace with only what slirp needs (and pivot_root);
        # --enable-seccomp: a syscall filter. Both off when the build lacks them.
        if feats.get("enable-sandbox"):
            a.append("--enable-sandbox")
        if feats.get("enable-seccomp"):
            a.append("--enable-seccomp")
    a += [str(pid), "tap0"]
    return a


def start(pid: int, state_dir: str, opts: SlirpOptions = SlirpOptions(), proc: str = "/proc") -> Slirp:
    """Start slirp4netns for the network namespace of ``pid`` and wait until it is configured.

    Its API socket and log go to ``state_dir`` (which must exist). It is started in its own
    session, so it outlives the caller (detached containers); ``stop()`` ends it.
    """
    from rootless.runtime import proc_start_time

    tools.require("slirp4netns")
    api_socket = os.path.join(state_dir, "slirp4netns.sock")
    log = os.path.join(state_dir, "slirp4netns.log")
    _unlink(api_socket)
    # A unix socket path holds 107 bytes; state dirs can be longer. Bind through a directory fd
    # that slirp4netns inherits: /proc/self/fd/N/slirp4netns.sock names the same place.
    dir_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(dir_fd, True)
    bind_path = api_socket if len(api_socket) < 100 else f"/proc/self/fd/{dir_fd}/slirp4netns.sock"
    ready_r, ready_w = os.pipe()
    # --exit-fd: slirp4netns exits when this fd polls readable. A pidfd of the container's init
    # is readable once it has exited, so slirp4netns goes with the container, whoever forgets
    # to stop it (it otherwise outlives the namespace: its tap fd keeps it alive).
    try:
        exit_fd: Optional[int] = os.pidfd_open(pid)
    except (OSError, AttributeError):
        exit_fd = None  # Linux < 5.3: stop() ends it
    fds = (ready_w, dir_fd) + ((exit_fd,) if exit_fd is not None else ())
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        p = tools.spawn(
            argv(pid, opts, bind_path, ready_w, exit_fd=exit_fd),
            stderr=log_fd,
            stdout=log_fd,
            pass_fds=fds,
            start_new_session=True,
            hint=SLIRP_HINT,
        )
    finally:
        os.close(ready_w)
        os.close(log_fd)
        if exit_fd is not None:
            os.close(exit_fd)
    try:
        ok = _wait_ready(ready_r, p, opts.timeout)
    finally:
        os.close(ready_r)
        os.close(dir_fd)
    if ok != "ok":
        try:
            # EOF on the ready fd: it is exiting; give it a moment to say how
            rc = p.wait(timeout=2.0 if ok == "eof" else 0.01)
            why = f"exit status {rc}"
        except subprocess.TimeoutExpired:
            _kill(p.pid, signal.SIGKILL)
            p.wait()
            why = f"not ready after {opts.timeout:g} s" if ok == "timeout" else "it closed its ready fd"
        tail = _tail(log)
        raise ToolError(f"start `slirp4netns` for pid {pid}: {why}" + (f": {tail}" if tail else ""), SLIRP_HINT)
    _children[p.pid] = p
    return Slirp(p.pid, proc_start_time(p.pid, proc), api_socket, log)


def _wait_ready(fd: int, p: subprocess.Popen, timeout: float) -> str:
    """"ok" when slirp4netns wrote "1", "eof" when it closed the fd (died), else "timeout"."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            return "ok" if os.read(fd, 16).startswith(b"1") else "eof"


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    keep = [ln for ln in text.strip().splitlines() if "experimental" not in ln]
    return "\n".join(keep[-lines:])


def alive(s: Slirp, proc: str = "/proc") -> bool:
    from rootless.runtime import proc_start_time

    st = proc_start_time(s.pid, proc)
    return st is not None and (s.start_time is None or st == s.start_time)


def stop(s: Slirp, proc: str = "/proc", timeout: float = 2.0) -> None:
    """End slirp4netns (only if the pid is still that process: pid + start time).

    SIGKILL, and no waiting for the exit: it keeps no state that needs a clean exit (its API
    socket is removed here), and its exit takes 15-30 ms (the kernel tears down its sandbox's
    mount namespace), which every `run --rm` would otherwise wait for. Our child is reaped by
    subprocess later (or goes to init with us); ``timeout`` is kept for callers."""
    from rootless import trust

    # a Slirp read back from a state file: signal only that slirp4netns of ours (start time,
    # owner, name), remove only its socket (issue 11 item 3)
    if alive(s, proc) and trust.pid_is(s.pid, s.start_time, (COMM,), proc):
        _kill(s.pid, signal.SIGKILL)
    p = _children.pop(s.pid, None)
    if p is not None:
        p.poll()
    _unlink_socket(s.api_socket)


def _kill(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _unlink_socket(path: str) -> None:
    """Unlink our API socket: only a socket of ours with that name, never another file."""
    import stat

    if os.path.basename(path) != "slirp4netns.sock":
        return
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid():
        _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --- the API socket --------------------------------------------------------------------------------


def unix_connect(path: str, timeout: float = 5.0) -> socket.socket:
    """Connect to a unix socket, also when its path is longer than sun_path allows."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    dir_fd = None
    try:
        if len(path) >= 100:
            dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            s.connect(f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}")
        else:
            s.connect(path)
    except OSError:
        s.close()
        raise
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return s


def api_call(api_socket: str, request: Dict[str, Any], timeout: float = 5.0) -> Dict[str, Any]:
    what = f"call slirp4netns API `{request.get('execute')}`"
    try:
        s = unix_connect(api_socket, timeout)
    except OSError as e:
        raise RootlessError(f"{what}: {e.strerror or e}", "slirp4netns is not running for this container; restart it")
    try:
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)  # slirp4netns reads until EOF, then answers
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except OSError as e:
        raise RootlessError(f"{what}: {e.strerror or e}", "slirp4netns is not running for this container; restart it")
    finally:
        s.close()
    try:
        reply = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        raise RootlessError(f"{what}: not a JSON answer", "check the slirp4netns version (1.0 or later)")
    if "error" in reply:
        err = reply["error"]
        desc = err.get("desc", err) if isinstance(err, dict) else err
        raise RootlessError(f"{what}: {desc}", "check the port and address; see slirp4netns(1)")
    return reply if isinstance(reply, dict) else {}


def add_hostfwd(api_socket: str, proto: str, host_port: int, guest_port: int, host_addr: str = "0.0.0.0",
                guest_addr: str = GUEST_ADDR) -> int:
    """Forward host ``host_addr:host_port`` to the container's ``guest_port``; returns its id."""
    ret = api_call(api_socket, {"execute": "add_hostfwd", "arguments": {
        "proto": proto, "host_addr": host_addr or "0.0.0.0", "host_port": host_port,
        "guest_addr": guest_addr, "guest_port": guest_port}})
    return int(ret.get("return", {}).get("id", -1))


def remove_hostfwd(api_socket: str, fwd_id: int) -> None:
    api_call(api_socket, {"execute": "remove_hostfwd", "arguments": {"id": fwd_id}})


def list_hostfwd(api_socket: str) -> List[Dict[str, Any]]:
    """Entries as slirp4netns gives them: id, proto, host_addr, host_port, guest_addr, guest_port."""
    reply = api_call(api_socket, {"execute": "list_hostfwd"})
    return list(reply.get("entries", reply.get("return", {}).get("entries", [])))
