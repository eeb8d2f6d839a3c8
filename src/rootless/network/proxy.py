"""The builtin port driver: accept on the host, connect inside the container's network namespace.

Two processes per container (rootlesskit's builtin driver has the same split):

- the proxy (``rootless-proxy``), in the host's namespaces, holds the listening sockets (bound by
  the caller, so a busy or privileged port is reported before anything starts) and moves bytes
  in one epoll loop: ``os.splice`` socket -> pipe -> socket (zero copy; Python >= 3.10), else
  ``recv_into``/``send`` with a 256 KiB buffer;
- the connector, its single-threaded child, which joined the container's user and network
  namespaces (network/netns.py) and, per request, creates a socket there, starts a connect to
  127.0.0.1:PORT and passes the fd back with SCM_RIGHTS. It holds nothing of the host's: the one
  process inside the container's namespaces can reach no host socket.

The server sees connections from 127.0.0.1 (the client's address is not kept). The proxy exits
when the container's init exits (a pidfd in the loop), on SIGTERM, or when the connector dies.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rootless import procs
from rootless.errors import RootlessError
from rootless.network.ports import PortSpec, bind_all

BUF_SIZE = 256 * 1024
COMM = "rootless-proxy"  # /proc/PID/comm of the proxy, checked before it is signalled
PIPE_SIZE = 1024 * 1024  # per direction; past the user's pipe-user-pages-soft the kernel gives less
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032
UDP_IDLE = 60.0  # seconds before an idle UDP flow is forgotten
MAX_UDP_FLOWS = 4096
_REQ = struct.Struct("!IBH")  # id, proto (0 tcp, 1 udp), port
_REP = struct.Struct("!Ii")  # id, errno (0: an fd comes with it)
HAVE_SPLICE = hasattr(os, "splice")


@dataclass(frozen=True)
class Proxy:
    pid: int
    start_time: Optional[int]
    ports: List[PortSpec]

    def to_dict(self) -> Dict[str, Any]:
        return {"pid": self.pid, "start_time": self.start_time, "ports": [p.to_dict() for p in self.ports]}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Proxy:
        st = d.get("start_time")
        return cls(int(d["pid"]), int(st) if st is not None else None, [PortSpec.from_dict(p) for p in d.get("ports", [])])


def start(pid: int, ports: Sequence[PortSpec], *, log_path: str = "", proc: str = "/proc", timeout: float = 10.0) -> Proxy:
    """Bind ``ports`` on the host and start the proxy for the container whose init is ``pid``.

    Returns once the connector is inside the container's namespaces. The proxy is a child of the
    caller in its own session; ``stop()`` ends it (and reaps it when the caller is its parent).
    """
    from rootless.runtime import proc_start_time, userns

    bound = bind_all(ports, proc)
    fds = [s.fileno() for _, s in bound]
    specs = [p.to_dict() for p, _ in bound]
    r, w = os.pipe()
    try:
        child = userns.start_child(_proxy_main, (pid, fds, specs, w, log_path, proc), pass_fds=fds + [w], proc=proc)
    finally:
        os.close(w)
        for _, s in bound:
            s.close()
    try:
        msg = _read_until_eof(r, timeout)
    finally:
        os.close(r)
    if msg != b"ok":
        procs.kill(child, signal.SIGKILL)
        procs.reap(child, 1.0)
        text = msg.decode("utf-8", "replace") or "it exited before it was ready"
        raise RootlessError(f"start the port proxy for pid {pid}: {text}",
                            "check that the container is running; or use port-driver = \"slirp4netns\"")
    return Proxy(child, proc_start_time(child, proc), [p for p, _ in bound])


def stop(p: Proxy, proc: str = "/proc") -> None:

    from rootless import trust

    # read back from a state file: signal only our proxy (start time, owner, name; issue 11)
    if not trust.pid_is(p.pid, p.start_time, (COMM,), proc):
        return
    procs.kill(p.pid, signal.SIGTERM)
    procs.reap(p.pid, 2.0)


def _read_until_eof(fd: int, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out or b"no answer after %g s" % timeout
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        b = os.read(fd, 4096)
        if not b:
            return out
        out += b


# --- the proxy process -----------------------------------------------------------------------------


def _close_other_fds(keep: Sequence[int]) -> None:
    """A forked proxy must not hold the caller's pipes (``run -d | cat`` would never end)."""
    keep_set = set(keep) | {0, 1, 2}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = [str(i) for i in range(3, 1024)]
    for name in names:
        fd = int(name)
        if fd not in keep_set:
            try:
                os.close(fd)
            except OSError:
                pass


def _proxy_main(target: int, fds: List[int], specs: List[Dict[str, Any]], ready_w: int, log_path: str, proc: str) -> None:
    os.setsid()
    _close_other_fds(fds + [ready_w])
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if log_path:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 2)
        os.close(log)
    else:
        os.dup2(null, 2)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:  # six fds per TCP connection (two sockets, two pipes): raise the soft limit to the hard one
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    try:
        from rootless.linux import syscalls

        syscalls.set_name(COMM)
    except OSError:
        pass

    def fail(text: str) -> None:
        os.write(ready_w, text.encode())
        os._exit(1)

    try:
        pidfd = os.pidfd_open(target)
    except OSError as e:
        fail(f"watch pid {target}: {e.strerror}")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:
        ours.close()
        for fd in fds + [ready_w, pidfd]:
            os.close(fd)
        _connector(target, theirs, proc)
        os._exit(0)
    theirs.close()
    ours.settimeout(10)
    try:
        hello = ours.recv(4096)
    except OSError as e:
        hello = f"the connector did not answer: {e.strerror or e}".encode()
    if hello != b"ok":
        fail(hello.decode("utf-8", "replace") or "the connector died")
    ours.setblocking(False)
    listeners = [(PortSpec.from_dict(d), socket.socket(fileno=fd)) for d, fd in zip(specs, fds)]
    os.write(ready_w, b"ok")
    os.close(ready_w)
    Loop(ours, listeners, pidfd).run()
    os._exit(0)


def _connector(target: int, sock: socket.socket, proc: str) -> None:
    from rootless.linux import syscalls
    from rootless.network import netns

    try:
        syscalls.set_pdeathsig(signal.SIGKILL)
        netns.join(target, proc)
    except OSError as e:
        sock.send(f"join the network namespace of pid {target}: {e.strerror}".encode())
        return
    sock.send(b"ok")
    while True:
        try:
            data = sock.recv(64)
        except OSError:
            return
        if len(data) != _REQ.size:
            return
        req_id, proto, port = _REQ.unpack(data)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == 0 else socket.SOCK_DGRAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        try:
            if err in (0, errno.EINPROGRESS):
                socket.send_fds(sock, [_REP.pack(req_id, 0)], [s.fileno()])
            else:
                sock.send(_REP.pack(req_id, err))
        except OSError:
            return
        finally:
            s.close()


# --- moving bytes ----------------------------------------------------------------------------------


class _Pump:
    """One direction of a TCP connection: src -> dst, non-blocking, edge-triggered."""

    def __init__(self, src: socket.socket, dst: socket.socket):
        self.src, self.dst = src, dst
        self.eof = False
        self.done = False

    def step(self) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        if self.eof and not self.pending() and not self.done:
            self.done = True
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def pending(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _SplicePump(_Pump):
    FLAGS = 0

    def __init__(self, src: socket.socket, dst: socket.socket):
        super().__init__(src, dst)
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self.w, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self.cap = fcntl.fcntl(self.w, F_GETPIPE_SZ)
        self.buffered = 0
        self.sfd, self.dfd = src.fileno(), dst.fileno()

    def pending(self) -> int:
        return self.buffered

    def step(self) -> None:
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK  # type: ignore[attr-defined]  # novermin
        while True:
            moved = False
            if not self.eof and self.buffered < self.cap:
                try:
                    n = os.splice(self.sfd, self.w, self.cap - self.buffered, flags=flags)  # type: ignore[attr-defined]  # novermin
                    if n == 0:
                        self.eof = True
                    else:
                        self.buffered += n
                        moved = True
                except BlockingIOError:
                    pass
            if self.buffered:
                try:
                    n = os.splice(self.r, self.dfd, self.buffered, flags=flags)  # type: ignore[attr-defined]  # novermin
                    self.buffered -= n
                    moved = moved or n > 0
                except BlockingIOError:
                    pass
            if not moved:
                break
        self._finish()

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class _BufferPump(_Pump):
    def __init__(self, src: socket.socket, dst: socket.socket):
        super().__init__(src, dst)
        self.buf = memoryview(bytearray(BUF_SIZE))
        self.start = self.end = 0

    def pending(self) -> int:
        return self.end - self.start

    def step(self) -> None:
        while True:
            moved = False
            if not self.eof and self.end < BUF_SIZE:
                try:
                    n = self.src.recv_into(self.buf[self.end :])
                    if n == 0:
                        self.eof = True
                    else:
                        self.end += n
                        moved = True
                except BlockingIOError:
                    pass
            if self.end > self.start:
                try:
                    n = self.dst.send(self.buf[self.start : self.end])
                    self.start += n
                    moved = moved or n > 0
                except BlockingIOError:
                    pass
                if self.start == self.end:
                    self.start = self.end = 0
            if not moved:
                break
        self._finish()


class _TcpConn:
    def __init__(self, loop: Loop, client: socket.socket, inner: socket.socket):
        self.loop, self.client, self.inner = loop, client, inner
        cls = _SplicePump if HAVE_SPLICE else _BufferPump
        self.up, self.down = cls(client, inner), cls(inner, client)
        self.closed = False
        ev = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
        for s in (client, inner):
            loop.register(s.fileno(), ev, self.on_event)

    def on_event(self, events: int) -> None:
        if self.closed:
            return
        try:
            self.up.step()
            self.down.step()
        except OSError:
            self.close()
            return
        if events & select.EPOLLERR or (self.up.done and self.down.done):
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.inner):
            self.loop.unregister(s.fileno())
            s.close()
        self.up.close()
        self.down.close()


class _UdpFlow:
    def __init__(self, addr: Any):
        self.addr = addr
        self.sock: Optional[socket.socket] = None
        self.queue: List[bytes] = []
        self.last = time.monotonic()


class Loop:
    def __init__(self, connector: socket.socket, listeners: List[Tuple[PortSpec, socket.socket]], pidfd: int):
        self.ep = select.epoll()
        self.handlers: Dict[int, Callable[[int], None]] = {}
        self.connector = connector
        self.next_id = 1
        self.pending: Dict[int, Tuple[str, Any, Any]] = {}  # id -> ("tcp", client) | ("udp", listener, flow)
        self.flows: Dict[Tuple[int, Any], _UdpFlow] = {}
        self.running = True
        self.register(connector.fileno(), select.EPOLLIN, self.on_connector)
        self.register(pidfd, select.EPOLLIN, self.on_target_exit)
        for spec, s in listeners:
            if spec.proto == "tcp":
                self.register(s.fileno(), select.EPOLLIN, self._acceptor(s, spec.container_port))
            else:
                self.register(s.fileno(), select.EPOLLIN, self._udp_receiver(s, spec.container_port))

    def register(self, fd: int, events: int, fn: Callable[[int], None]) -> None:
        self.handlers[fd] = fn
        self.ep.register(fd, events)

    def unregister(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def run(self) -> None:
        last_sweep = time.monotonic()
        while self.running:
            try:
                events = self.ep.poll(5.0 if self.flows else -1)
            except InterruptedError:
                continue
            for fd, ev in events:
                fn = self.handlers.get(fd)
                if fn is None:
                    continue
                try:
                    fn(ev)
                except Exception as e:  # noqa: BLE001 - one bad connection must not stop every port
                    sys.stderr.write(f"rootless-proxy: {type(e).__name__}: {e}\n")
            if self.flows and time.monotonic() - last_sweep > 5.0:
                last_sweep = time.monotonic()
                self._sweep_udp()

    def on_target_exit(self, events: int) -> None:
        self.running = False

    def _request(self, proto: int, port: int, what: Tuple[str, Any, Any]) -> None:
        req_id = self.next_id
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF or 1
        self.connector.send(_REQ.pack(req_id, proto, port))
        self.pending[req_id] = what

    def _acceptor(self, ls: socket.socket, port: int) -> Callable[[int], None]:
        def on_accept(events: int) -> None:
            while True:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    return
                except OSError as e:
                    if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        sys.stderr.write(f"rootless-proxy: accept on port {ls.getsockname()[1]}: {e.strerror}\n")
                        return
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    self._request(0, port, ("tcp", c, None))
                except OSError:
                    c.close()

        return on_accept

    def on_connector(self, events: int) -> None:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.connector, 64, 1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                msg, fds = b"", []
            if not msg:
                sys.stderr.write("rootless-proxy: the connector exited; stopping\n")
                self.running = False
                return
            req_id, err = _REP.unpack(msg[: _REP.size])
            what = self.pending.pop(req_id, None)
            inner = socket.socket(fileno=fds[0]) if fds else None
            if what is None:
                if inner:
                    inner.close()
                continue
            if what[0] == "tcp":
                client = what[1]
                if inner is None:
                    client.close()  # the container refused: the client sees the connection end
                    continue
                try:
                    _TcpConn(self, client, inner)
                except OSError as e:  # out of fds or pipes: drop this connection, keep serving
                    sys.stderr.write(f"rootless-proxy: connection: {e.strerror}\n")
                    client.close()
                    inner.close()
            else:
                self._udp_connected(what[1], what[2], inner)

    # --- UDP: one connected socket inside per client address ---------------------------------

    def _udp_receiver(self, ls: socket.socket, port: int) -> Callable[[int], None]:
        def on_datagram(events: int) -> None:
            while True:
                try:
                    data, addr = ls.recvfrom(65535)
                except BlockingIOError:
                    return
                except OSError:
                    return
                key = (ls.fileno(), addr)
                flow = self.flows.get(key)
                if flow is None:
                    if len(self.flows) >= MAX_UDP_FLOWS:
                        continue  # drop: like a full conntrack table
                    flow = self.flows[key] = _UdpFlow(addr)
                    try:
                        self._request(1, port, ("udp", ls, flow))
                    except OSError:
                        del self.flows[key]
                        continue
                flow.last = time.monotonic()
                if flow.sock is None:
                    if len(flow.queue) < 64:
                        flow.queue.append(data)
                    continue
                try:
                    flow.sock.send(data)
                except OSError:
                    pass

        return on_datagram

    def _udp_connected(self, ls: socket.socket, flow: _UdpFlow, inner: Optional[socket.socket]) -> None:
        key = (ls.fileno(), flow.addr)
        if inner is None:
            self.flows.pop(key, None)
            return
        if self.flows.get(key) is not flow:
            inner.close()
            return
        flow.sock = inner

        def on_reply(events: int) -> None:
            while True:
                try:
                    data = inner.recv(65535)
                except BlockingIOError:
                    return
                except OSError:
                    return  # ECONNREFUSED: nothing listens inside yet; keep the flow
                flow.last = time.monotonic()
                try:
                    ls.sendto(data, flow.addr)
                except OSError:
                    pass

        self.register(inner.fileno(), select.EPOLLIN, on_reply)
        for data in flow.queue:
            try:
                inner.send(data)
            except OSError:
                pass
        flow.queue = []

    def _sweep_udp(self) -> None:
        now = time.monotonic()
        for key, flow in list(self.flows.items()):
            if now - flow.last > UDP_IDLE and flow.sock is not None:
                self.unregister(flow.sock.fileno())
                flow.sock.close()
                del self.flows[key]
