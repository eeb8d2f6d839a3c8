"""Entering a container's network namespace from a single-threaded child process.

setns(2) into a user namespace needs CAP_SYS_ADMIN there, which the namespace's owner has
(user_namespaces(7): "a process that has the same effective UID as the owner of the namespace
has all capabilities in it"), and fails in a multi-threaded process or one that shares its
filesystem attributes (CLONE_FS): hence a fresh forked child. The network namespace is joined
second, once we hold CAP_SYS_ADMIN in the user namespace that owns it (nsenter(1)'s order).
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from rootless.linux import syscalls


def _same(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def join(pid: int, proc: str = "/proc", user: bool = True) -> None:
    """Join the user (unless it is ours already) and network namespaces of ``pid``.

    Only in a child process that will never return to the engine's code. Raises OSError.
    """
    net_fd = os.open(f"{proc}/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if user and not _same(f"{proc}/{pid}/ns/user", f"{proc}/self/ns/user"):
            user_fd = os.open(f"{proc}/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(user_fd, syscalls.CLONE_NEWUSER)
            finally:
                os.close(user_fd)
        syscalls.setns(net_fd, syscalls.CLONE_NEWNET)
    finally:
        os.close(net_fd)


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (ioctl SIOCSIFFLAGS, netdevice(7))."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifr))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def _loopback_child(pid: int, proc: str, w: int) -> None:
    msg = b""
    try:
        join(pid, proc)
        loopback_up()
    except OSError as e:
        msg = (e.strerror or str(e)).encode()
    os.write(w, msg or b"ok")
    os._exit(0)


def bring_up_loopback(pid: int, proc: str = "/proc") -> None:
    """``ip link set lo up`` in the network namespace of ``pid`` (--network none, helper mode)."""
    from rootless.errors import RootlessError
    from rootless.runtime import userns

    r, w = os.pipe()
    try:
        child = userns.start_child(_loopback_child, (pid, proc, w), pass_fds=(w,), proc=proc)
    finally:
        os.close(w)
    try:
        msg = os.read(r, 4096)
    finally:
        os.close(r)
    userns.wait_status(child)
    if msg != b"ok":
        raise RootlessError(
            f"bring up `lo` in the network namespace of pid {pid}: {msg.decode(errors='replace') or 'the helper process died'}",
            "check that the container is still running and that its user namespace is yours",
        )
