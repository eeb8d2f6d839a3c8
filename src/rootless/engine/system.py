"""The system through the engine: info, version, disk usage (df), prune, registry log in/out.

The one way in for `rootless info/version/system/login/logout` and the Engine API's /info,
/version, /system/df and /auth. Values are returned (Docker's shapes), errors raised; imports are
inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

# --- info, version -------------------------------------------------------------------------------------


def info(config: Any) -> Tuple[Dict[str, Any], List[Any]]:
    """Docker's /info dict (plus the rootless sections of sysinfo.gather), and the warnings as
    sysinfo.Warning items (text, hint) for the face to show."""
    from rootless import sysinfo

    d = sysinfo.gather(config)
    warnings = d.pop("_warnings")
    return d, warnings


def version() -> Dict[str, Any]:
    """Docker's version data: Client (this program) and Server (the engine, in this process)."""
    import platform
    import sys

    from rootless import API_VERSION, __version__

    return {
        "Client": {
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "PythonVersion": platform.python_version(),
            "Os": sys.platform,
            "Arch": platform.machine(),
        },
        "Server": {
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.24",
            "KernelVersion": platform.release(),
            "Os": "linux",
            "Arch": platform.machine(),
        },
    }


# --- df -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageLine:
    """One line of ``system df``: counts, and bytes used and reclaimable."""

    type: str          # Images, Containers, Local Volumes, Build Cache
    total: int
    active: int
    size: int
    reclaimable: int


def du(path: str) -> int:
    """Bytes used below ``path`` (each inode once; unreadable parts are skipped)."""
    total = 0
    seen = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total


def _running(rec: Dict[str, Any]) -> bool:
    return bool((rec.get("State") or {}).get("Running"))


def df(config: Any) -> List[UsageLine]:
    """Disk usage of images, containers (their directories), volumes and the (empty) build cache."""
    from rootless import state
    from rootless.engine import images

    cstore = state.Store(config.data_root)
    items = cstore.items()  # running only while its process lives (Store.refresh)
    containers = [rec for _, rec in items]
    img = images.usage(config, [c.get("Image") for c in containers])
    c_sizes = [(c, du(cstore.dir(cid))) for cid, c in items]
    vol_root = os.path.join(config.data_root, "volumes")
    try:
        vols = [v for v in sorted(os.listdir(vol_root)) if os.path.isdir(os.path.join(vol_root, v))]
    except OSError:
        vols = []
    v_size = sum(du(os.path.join(vol_root, v)) for v in vols)
    return [
        UsageLine("Images", img.total, img.active, img.size, img.reclaimable),
        UsageLine("Containers", len(containers), sum(1 for c in containers if _running(c)),
                  sum(s for _, s in c_sizes), sum(s for c, s in c_sizes if not _running(c))),
        UsageLine("Local Volumes", len(vols), 0, v_size, v_size),
        UsageLine("Build Cache", 0, 0, 0, 0),
    ]


# --- prune ---------------------------------------------------------------------------------------------


def prune(config: Any, all_images: bool = False, until: Optional[float] = None):
    """``system prune``: today the images (dangling, or with ``all_images`` every unused one) added
    before ``until``; an engine.images.PruneReport."""
    from rootless.engine import images

    return images.prune(config, all_images, until)


# --- registry credentials (docker's config.json) ----------------------------------------------------------


def server_host(server: Optional[str]) -> str:
    """The registry host credentials are stored under (``docker.io`` for Docker Hub's names)."""
    from rootless.image import auth

    if not server:
        return "docker.io"
    host = auth.hostname_of(server)
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return host


def login(config: Any, server: Optional[str], username: str, password: str) -> str:
    """Check the credentials against the registry, then store them; the host they are stored under."""
    from rootless.image import auth
    from rootless.image.registry import RegistryClient

    host = server_host(server)
    creds = (username, password)
    client = RegistryClient(config, host, "", credentials=lambda h: creds, what=host)
    client.verb = "log in to"
    client.login_check(client.endpoints[-1])
    auth.store_credentials(host, username, password)
    return host


def logout(server: Optional[str]) -> Tuple[bool, str]:
    """Forget the credentials of ``server``: whether there were any, and the name docker shows for
    the server (Docker Hub's key when none is given)."""
    from rootless.image import auth

    return bool(auth.remove_credentials(server_host(server))), server or auth.DOCKER_HUB_KEY


# --- the warm server (rootless/warm.py) -----------------------------------------------------------------


def warm_servers() -> Tuple[bool, List[Tuple[int, str]]]:
    """Whether the warm server is enabled (ROOTLESS_WARM), and the (pid, socket) of those running."""
    from rootless import warm

    root = warm.exec_root()
    return warm.enabled(), (warm.running_servers(root) if root else [])


def stop_warm_servers(servers: List[Tuple[int, str]], timeout: float = 30) -> int:
    """SIGTERM each (it stops taking commands; the running ones finish), then wait up to ``timeout``
    seconds for them to exit; how many there were."""
    import signal
    import time

    from rootless import warm

    for pid, _ in servers:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(warm.server_alive(pid) for pid, _ in servers):
        time.sleep(0.05)
    return len(servers)
