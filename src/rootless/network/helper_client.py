"""The engine's side of the root helper (network/helper.py): one JSON request per connection."""

from __future__ import annotations

import json
import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

from rootless.errors import RootlessError
from rootless.network.ports import PortSpec

DEFAULT_SOCKET = "/run/rootless-helper.sock"
_HINT = "is `rootless helper` running as root? (see rootless-helper(1))"


@dataclass(frozen=True)
class HelperLease:
    address: str
    prefixlen: int
    gateway: str
    ifname: str = "eth0"
    ports: List[PortSpec] = field(default_factory=list)


def available(sock: str) -> bool:
    """A socket file is there and something accepts on it."""
    try:
        if not stat.S_ISSOCK(os.stat(sock).st_mode):
            return False
    except OSError:
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()


def request(sock: str, req: Dict[str, Any], timeout: float = 30.0) -> Dict[str, Any]:
    what = f"ask the network helper at `{sock}` to {req.get('op')}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        raise RootlessError(f"{what}: {e.strerror or e}", _HINT)
    finally:
        s.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise RootlessError(f"{what}: no answer", _HINT)
    if not isinstance(reply, dict) or not reply.get("ok"):
        err = reply.get("error", "refused") if isinstance(reply, dict) else "refused"
        hint = reply.get("hint") if isinstance(reply, dict) else None
        raise RootlessError(f"network helper: {err}", hint or _HINT)
    return reply


def connect(sock: str, pid: int, ports: Sequence[PortSpec] = ()) -> HelperLease:
    """Give the container whose init is ``pid`` an address on the helper's bridge."""
    r = request(sock, {"op": "connect", "pid": pid, "ports": [p.to_dict() for p in ports]})
    return HelperLease(str(r["address"]), int(r["prefixlen"]), str(r["gateway"]), str(r.get("ifname", "eth0")),
                       [PortSpec.from_dict(p) for p in r.get("ports", [])])


def disconnect(sock: str, pid: int) -> None:
    request(sock, {"op": "disconnect", "pid": pid})


def ping(sock: str) -> Dict[str, Any]:
    return request(sock, {"op": "ping"}, timeout=5.0)
