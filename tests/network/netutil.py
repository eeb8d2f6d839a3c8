"""Helpers of the network tests: namespaces made by util-linux `unshare`, entered by `nsenter`.

``netns_pid`` is a `sleep` in a new user + network namespace (root inside = the test user), the
stand-in for a container's init. Only loopback and namespace addresses are used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from typing import List, Sequence


def new_netns(prefix: Sequence[str] = ()) -> subprocess.Popen:
    p = subprocess.Popen(list(prefix) + ["unshare", "--user", "--map-root-user", "--net", "sleep", "120"])
    deadline = time.monotonic() + 5
    own = os.stat("/proc/self/ns/net").st_ino
    while time.monotonic() < deadline:
        try:
            # unshare writes the uid map after it made the namespaces: until it runs sleep, an
            # nsenter could join a user namespace with no map yet (EPERM under load)
            with open(f"/proc/{p.pid}/comm") as f:
                ran = f.read().strip() == "sleep"
            if ran and os.stat(f"/proc/{p.pid}/ns/net").st_ino != own:
                return p
        except OSError:
            pass
        time.sleep(0.01)
    p.kill()
    raise AssertionError("unshare did not create a network namespace")


def nsenter(pid: int, argv: Sequence[str], prefix: Sequence[str] = ()) -> List[str]:
    return list(prefix) + ["nsenter", "--preserve-credentials", "-U", "-n", "-t", str(pid)] + list(argv)


def http_get(url: str, timeout: float = 5.0, tries: int = 50) -> bytes:
    """GET with retries while the server inside is starting."""
    last: Exception = AssertionError("no try")
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read()
        except OSError as e:
            last = e
            time.sleep(0.1)
    raise last


PY = sys.executable
