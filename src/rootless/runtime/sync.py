"""Typed messages between the parent, stage 1 and init (and exec's processes), over a SOCK_SEQPACKET socketpair.

One datagram is one message: a JSON object with a ``type`` and the fields of the message.
SOCK_SEQPACKET keeps message boundaries and reports EOF once every peer has closed its end, which
is how the parent learns that the init exec'd (its end is close-on-exec) or died.
A file descriptor (the pty master) travels beside a message with SCM_RIGHTS.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Dict, Optional, Tuple, Type

from rootless.errors import RuntimeSetupError
from rootless.value import Value, as_dict

MAX_MSG = 65536


class MapPlease(Value):
    """stage 1 -> parent: I have unshared the user namespace; write my uid/gid maps."""


class MapDone(Value):
    """parent -> stage 1: the maps are written; you are root in your namespace now."""


class HelperPid(Value):
    """stage 1 -> parent: an ExecStep tool runs in the foreground with this (host) pid."""

    __slots__ = ("pid",)
    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid


class InitPid(Value):
    """stage 1 -> parent: the container init has this (host) pid."""

    __slots__ = ("pid",)
    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid


class ExecPid(Value):
    """exec's joiner -> caller: the exec'd command has this (host) pid (signals go to it)."""

    __slots__ = ("pid",)
    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid


class PtyMaster(Value):
    """init -> parent: the pty master comes with this message (SCM_RIGHTS)."""


class Ready(Value):
    """init -> parent: set up, waiting for Start (or for a reader of the exec fifo)."""


class Start(Value):
    """parent -> init: exec now."""


class Error(Value):
    """any child -> parent: this step failed; the parent raises RuntimeSetupError from it."""

    __slots__ = ("message", "hint", "exit_code")
    message: str
    hint: Optional[str]
    exit_code: int

    def __init__(self, message: str, hint: Optional[str] = None, exit_code: int = 125) -> None:
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


MESSAGES: Dict[str, Type] = {
    c.__name__: c for c in (MapPlease, MapDone, HelperPid, InitPid, ExecPid, PtyMaster, Ready, Start, Error)
}


def encode(msg) -> bytes:
    d = as_dict(msg)
    d["type"] = type(msg).__name__
    return json.dumps(d).encode()


def decode(data: bytes):
    try:
        d = json.loads(data.decode())
        cls = MESSAGES[d.pop("type")]
        names = set(cls.__slots__)
        return cls(**{k: v for k, v in d.items() if k in names})
    except (ValueError, KeyError, TypeError) as e:
        raise RuntimeSetupError(f"read runtime message: malformed ({e})", "this is a bug in rootless; please report it")


def socketpair() -> Tuple[socket.socket, socket.socket]:
    """(parent end, child end); both close-on-exec (the child end must survive fork, not exec)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, msg, fd: Optional[int] = None) -> None:
    data = encode(msg)
    if fd is None:
        sock.sendall(data)
    else:
        socket.send_fds(sock, [data], [fd])


def recv(sock: socket.socket, timeout: Optional[float] = None):
    """The next message, or None at EOF (every peer closed its end)."""
    msg, _fd = recv_with_fd(sock, timeout)
    return msg


def recv_with_fd(sock: socket.socket, timeout: Optional[float] = None):
    """(message or None at EOF, the fd that came with it or None)."""
    sock.settimeout(timeout)
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MSG, 1)
    except socket.timeout:
        raise RuntimeSetupError(
            f"wait for the container's setup: no answer after {timeout:g} s",
            "a setup step hangs; `ps -eo pid,comm | grep rootless` shows which stage",
        )
    except ConnectionResetError:
        return None, None
    finally:
        sock.settimeout(None)
    if not data:
        for fd in fds:
            _close(fd)
        return None, None
    return decode(data), (fds[0] if fds else None)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
