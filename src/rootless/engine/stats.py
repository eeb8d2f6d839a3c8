"""`stats`: one container's resource usage, sampled from its cgroup and its network namespace.

- ``sample(rec)`` -> ``Sample``: one reading of a container: its cgroup counters
  (``CgroupHandle.stats()``), when it has a cgroup; the number of its processes (pids.current,
  else counted in /proc); the byte counters of its network namespace, read from the host as
  ``/proc/<init pid>/net/dev`` (every interface but ``lo``, as docker sums the endpoint's
  interfaces).
- ``row(prev, cur)`` -> docker's fields (ID, Name, Container, CPUPerc, MemUsage, MemPerc,
  NetIO, BlockIO, PIDs), as strings formatted like the docker CLI (binary units for memory,
  decimal ones for I/O). CPU % needs two samples: the cgroup's usage_usec delta over the wall
  time between them, which equals docker's cpu_delta / system_delta * online_cpus.

A running container without a cgroup (a cgroup v1 / hybrid host, no limits) shows what can be
known without one (processes, network bytes) and ``--`` for the rest; a stopped one shows zeros,
as docker does. Kernel paths are parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from rootless import state as st

NA = "--"
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


@dataclass(frozen=True)
class Sample:
    cid: str
    name: str
    running: bool
    at: float  # time.monotonic() of the reading
    cgroup: Any = None  # rootless.cgroups.CgroupStats, None without a cgroup
    pids: Optional[int] = None
    net: Optional[Tuple[int, int]] = None  # (rx bytes, tx bytes); None for --network host
    host_memory: int = 0  # MemTotal: docker's limit when memory.max is "max"


def _custom_size(size: float, base: float, units: Tuple[str, ...], fmt: str) -> str:
    """go-units' CustomSize: divide by ``base`` while it is at least ``base``."""
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return (fmt % size) + units[i]


def bytes_size(n: float) -> str:
    """go-units BytesSize: 1.5MiB, 31.26GiB (memory columns)."""
    return _custom_size(float(n), 1024.0, _BINARY, "%.4g")


def human_size(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3): 0B, 1.23kB, 45.6MB (I/O columns)."""
    return _custom_size(float(n), 1000.0, _DECIMAL, "%.3g")


def net_dev(pid: int, proc: str = "/proc") -> Optional[Tuple[int, int]]:
    """(rx, tx) bytes over the interfaces of ``pid``'s network namespace, ``lo`` left out."""
    try:
        with open(f"{proc}/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    rx = tx = 0
    for line in lines:
        name, _, rest = line.partition(":")
        cols = rest.split()
        if name.strip() == "lo" or len(cols) < 9:
            continue
        try:
            rx += int(cols[0])
            tx += int(cols[8])
        except ValueError:
            continue
    return rx, tx


def host_memory(proc: str = "/proc") -> int:
    try:
        with open(f"{proc}/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _handle(rec: st.Record, cgroup_root: str):
    data = (rec.get("Rootless") or {}).get("Cgroup")
    if not data:
        return None
    from rootless.cgroups import CgroupHandle
    from rootless.errors import RootlessError

    try:
        h = CgroupHandle.from_json(data, cgroup_root=cgroup_root)
    except (RootlessError, ValueError, TypeError, AttributeError):
        return None
    return h if h.exists() else None


def sample(rec: st.Record, proc: str = "/proc", cgroup_root: str = "/sys/fs/cgroup") -> Sample:
    s = rec.get("State") or {}
    cid = rec["Id"]
    name = (rec.get("Name") or "").lstrip("/") or NA
    now = time.monotonic()
    running = bool(s.get("Running")) and st.is_alive(s, proc)
    if not running:
        return Sample(cid, name, False, now)
    pid = int(s.get("Pid") or 0)
    h = _handle(rec, cgroup_root)
    cg = None
    if h is not None:
        try:
            cg = h.stats()
        except (OSError, ValueError):
            cg = None
    if cg is not None:
        pids: Optional[int] = cg.pids_current
    else:
        from rootless.engine.containers import container_pids

        try:
            pids = len(container_pids(pid, proc))
        except OSError:
            pids = None
    mode = (rec.get("HostConfig") or {}).get("NetworkMode") or ""
    net = None if mode == "host" else net_dev(pid, proc)
    return Sample(cid, name, True, now, cg, pids, net, host_memory(proc))


def _pct(x: float) -> str:
    return f"{x:.2f}%"


def row(prev: Optional[Sample], cur: Sample, no_trunc: bool = False, ref: Optional[str] = None) -> Dict[str, str]:
    """docker's stats fields for ``cur`` (CPU % from ``prev``, an earlier sample of the same container)."""
    out = {"ID": cur.cid if no_trunc else cur.cid[:12], "Name": cur.name}
    out["Container"] = ref or out["ID"]
    if not cur.running:  # docker shows a stopped container with zeros
        out.update(CPUPerc=_pct(0), MemUsage="0B / 0B", MemPerc=_pct(0), NetIO="0B / 0B", BlockIO="0B / 0B",
                   PIDs="0", MemLimit="0B", CPULimit=NA, PIDsLimit=NA)
        return out
    cg = cur.cgroup
    out["PIDs"] = NA if cur.pids is None else str(cur.pids)
    out["NetIO"] = NA if cur.net is None else f"{human_size(cur.net[0])} / {human_size(cur.net[1])}"
    if cg is None:
        out.update(CPUPerc=NA, MemUsage=f"{NA} / {NA}", MemPerc=NA, BlockIO=NA, MemLimit=NA, CPULimit=NA,
                   PIDsLimit=NA)
        return out
    cpu = 0.0
    if prev is not None and prev.cgroup is not None and cur.at > prev.at:
        delta = cg.cpu_usage_usec - prev.cgroup.cpu_usage_usec
        cpu = max(delta, 0) / ((cur.at - prev.at) * 1e6) * 100.0
    limit = cg.memory_limit if cg.memory_limit is not None else cur.host_memory
    out["CPUPerc"] = _pct(cpu)
    out["MemUsage"] = f"{bytes_size(cg.memory_usage)} / {bytes_size(limit)}"
    out["MemPerc"] = _pct(cg.memory_usage / limit * 100.0 if limit else 0.0)
    out["BlockIO"] = f"{human_size(cg.io_read_bytes)} / {human_size(cg.io_write_bytes)}"
    out["MemLimit"] = bytes_size(cg.memory_limit) if cg.memory_limit is not None else "max"
    out["CPULimit"] = f"{cg.cpu_limit:g}" if cg.cpu_limit is not None else "max"
    out["PIDsLimit"] = str(cg.pids_limit) if cg.pids_limit is not None else "max"
    return out
