"""What `rootless info` reports: docker info's fields, plus what matters to a rootless user.

Each check that can go wrong for an unprivileged user becomes a Warning with a hint, so that
`info` is the first thing to run when something does not work.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from rootless import __version__, cgroups, idmap, tools
from rootless.config import Config

HOST_TOOLS = ("newuidmap", "newgidmap", "slirp4netns", "fuse-overlayfs")
# f_type names of network filesystems where rootless storage misbehaves (xattrs, overlay, locks).
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "ceph", "lustre", "gpfs", "afs"}


@dataclass(frozen=True)
class Warning:
    text: str
    hint: Optional[str] = None


def _mount_fstype(path: str, mountinfo: str = "/proc/self/mountinfo") -> Optional[str]:
    """The filesystem type of the mount holding ``path`` (the longest matching mount point)."""
    p = os.path.abspath(path)
    while not os.path.exists(p) and p != "/":
        p = os.path.dirname(p)
    p = os.path.realpath(p)
    best, fstype = "", None
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        parts = left.split()
        if len(parts) < 5 or not right:
            continue
        mp = parts[4].replace("\\040", " ")
        if (p == mp or p.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, fstype = mp, right.split()[0]
    return fstype


def _dev_usable(path: str) -> Optional[str]:
    """None when usable, else why not."""
    if not os.path.exists(path):
        return "missing"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return e.strerror or "not usable"
    os.close(fd)
    return None


def _userns_problem(proc_sys: str = "/proc/sys") -> Optional[str]:
    def val(name: str) -> Optional[str]:
        try:
            with open(os.path.join(proc_sys, name)) as f:
                return f.read().strip()
        except OSError:
            return None

    if val("kernel/unprivileged_userns_clone") == "0":
        return "kernel.unprivileged_userns_clone"
    if val("user/max_user_namespaces") == "0":
        return "user.max_user_namespaces"
    if val("kernel/apparmor_restrict_unprivileged_userns") == "1":
        return "kernel.apparmor_restrict_unprivileged_userns"
    return None


def _count_containers(data_root: str) -> Dict[str, int]:
    counts = {"total": 0, "running": 0, "paused": 0, "stopped": 0}
    if not os.path.isdir(os.path.join(data_root, "containers")):
        return counts
    from rootless import state

    store = state.Store(data_root)
    for rec in store.list():
        status = (store.refresh(rec).get("State") or {}).get("Status", "exited")
        counts["total"] += 1
        counts[{"running": "running", "paused": "paused"}.get(status, "stopped")] += 1
    return counts


def _count_images(data_root: str) -> int:
    try:
        from rootless.image.store import ImageStore

        return len(ImageStore(data_root).list())
    except Exception:  # noqa: BLE001 - info must work with a missing or damaged store
        return 0


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _maps_text(maps: List[idmap.IdMapping]) -> List[str]:
    return [f"{m.container} -> {m.host} ({m.count})" for m in maps]


def gather(config: Config, *, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> Dict[str, Any]:
    from rootless.storage import select

    warnings: List[Warning] = []
    ids = idmap.load(subuid, subgid)
    if not ids.has_ranges:
        missing = [p for p, r in ((subuid, ids.subuids), (subgid, ids.subgids)) if not r]
        warnings.append(
            Warning(
                f"user `{ids.user}` has no range in {' and '.join(missing)}: containers get a one-uid mapping "
                "(only uid 0 exists inside; chown to other users fails, images with files of other owners are squashed)",
                f"ask an administrator to run `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {ids.user}`",
            )
        )
    problem = _userns_problem()
    if problem:
        warnings.append(Warning(f"unprivileged user namespaces are disabled ({problem})", f"set sysctl {problem} to allow them"))
    if config.exec_root_warning:
        warnings.append(
            Warning(config.exec_root_warning, "log in through a session that sets it (ssh, machinectl shell) or set exec-root in daemon.toml")
        )
    fstype = _mount_fstype(config.data_root)
    if fstype in NETWORK_FS:
        warnings.append(
            Warning(
                f"data-root `{config.data_root}` is on a network filesystem ({fstype}): overlay, xattrs and locks may fail",
                "set data-root in daemon.toml to a local disk, e.g. a folder under /var/tmp",
            )
        )
    tool_rows = {}
    for t in HOST_TOOLS:
        path = tools.which(t)
        ver = tools.version(t) if path and t in ("slirp4netns", "fuse-overlayfs") else None
        tool_rows[t] = {"Path": path, "Version": ver}
        if path is None:
            need = {
                "newuidmap": "containers cannot map more than one uid",
                "newgidmap": "containers cannot map more than one gid",
                "slirp4netns": "containers get no network",
                "fuse-overlayfs": "the fuse-overlayfs storage driver is unavailable",
            }[t]
            if t in ("newuidmap", "newgidmap") and not ids.has_ranges:
                continue
            warnings.append(Warning(f"host tool `{t}` not found: {need}", f"apt-get install {tools.PACKAGES[t]}"))
    for dev, what in (("/dev/net/tun", "slirp4netns networking"), ("/dev/fuse", "fuse-overlayfs")):
        why = _dev_usable(dev)
        if why:
            warnings.append(
                Warning(f"`{dev}` is not usable ({why}): {what} will fail", f"an administrator can run `chmod 0666 {dev}` (udev does this on most hosts)")
            )
    try:
        choice = select.choose(config)
        driver, driver_reason = choice.name, choice.reason
    except Exception as e:  # noqa: BLE001 - show the problem instead of failing
        driver, driver_reason = config.storage_driver or "none", getattr(e, "message", str(e))
        warnings.append(Warning(f"storage driver: {driver_reason}", getattr(e, "hint", None)))
    cg = cgroups.detect()
    if cg.problem:
        warnings.append(Warning(f"resource limits (--memory, --cpus, --pids-limit) are unavailable: {cg.problem}", cg.hint))
    counts = _count_containers(config.data_root)
    from rootless import network

    net = network.info(config)
    runtimes = {"rootless": {"path": "(built in)"}}
    for name in ("crun", "runc"):
        p = tools.which(name)
        if p:
            runtimes[name] = {"path": p}
    runtimes.update(config.runtimes)
    uname = os.uname()
    return {
        "ID": "",
        "Containers": counts["total"],
        "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["stopped"],
        "Images": _count_images(config.data_root),
        "Driver": driver,
        "DriverStatus": [["Chosen because", driver_reason]],
        "LoggingDriver": config.log_driver,
        "CgroupDriver": cg.driver,
        "CgroupVersion": cg.version,
        "CgroupControllers": cg.controllers,
        "CgroupLimits": "available" if cg.limits_available else f"unavailable: {cg.problem}",
        "KernelVersion": uname.release,
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "DockerRootDir": config.data_root,
        "ExecRoot": config.exec_root,
        "ConfigFile": config.source or "(none: defaults)",
        "Name": uname.nodename,
        "ServerVersion": __version__,
        "Runtimes": runtimes,
        "DefaultRuntime": config.default_runtime,
        "Debug": config.debug_enabled,
        "SecurityOptions": [f"name=seccomp,profile={config.seccomp_profile or 'builtin'}", "name=rootless", "name=userns"],
        "RegistryConfig": {
            "Mirrors": list(config.registry_mirrors),
            "InsecureRegistryCIDRs": list(config.insecure_registries),
        },
        "Rootless": {
            "User": ids.user,
            "UID": ids.uid,
            "GID": ids.gid,
            "UIDMap": _maps_text(ids.uid_mappings()),
            "GIDMap": _maps_text(ids.gid_mappings()),
            "HostTools": tool_rows,
            "DataRootFilesystem": fstype or "unknown",
        },
        "Labels": list(config.labels),
        "Network": {"Mode": net["network"], "PortDriver": net["port driver"], "Helper": net["helper"]},
        "Warnings": [w.text for w in warnings],
        "_warnings": warnings,
        "PythonVersion": platform.python_version(),
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{n}B"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _security_lines(opts: List[str]) -> List[str]:
    """docker info's layout: ``name=seccomp,profile=builtin`` -> ``  seccomp`` + ``   Profile: builtin``."""
    out = []
    for o in opts:
        fields = dict(kv.partition("=")[::2] for kv in o.split(","))
        out.append(f"  {fields.pop('name', o)}")
        out += [f"   {k.capitalize()}: {v}" for k, v in fields.items()]
    return out


def render_text(d: Dict[str, Any]) -> str:
    r = d["Rootless"]
    out = [
        "Server:",
        f" Containers: {d['Containers']}",
        f"  Running: {d['ContainersRunning']}",
        f"  Paused: {d['ContainersPaused']}",
        f"  Stopped: {d['ContainersStopped']}",
        f" Images: {d['Images']}",
        f" Server Version: {d['ServerVersion']}",
        f" Storage Driver: {d['Driver']}",
    ]
    out += [f"  {k}: {v}" for k, v in d["DriverStatus"]]
    out += [
        f" Logging Driver: {d['LoggingDriver']}",
        f" Cgroup Driver: {d['CgroupDriver']}",
        f" Cgroup Version: {d['CgroupVersion']}",
        f"  Limits: {d['CgroupLimits']}",
    ]
    if d["CgroupControllers"]:
        out.append(f"  Controllers: {' '.join(d['CgroupControllers'])}")
    out += [
        f" Network: {d['Network']['Mode']}",
        f"  Port Driver: {d['Network']['PortDriver']}",
        f"  Root Helper: {d['Network']['Helper']}",
        f" Runtimes: {' '.join(d['Runtimes'])}",
        f" Default Runtime: {d['DefaultRuntime']}",
        " Security Options:",
        *_security_lines(d["SecurityOptions"]),
        f" Kernel Version: {d['KernelVersion']}",
        f" Operating System: {d['OperatingSystem']}",
        f" OSType: {d['OSType']}",
        f" Architecture: {d['Architecture']}",
        f" CPUs: {d['NCPU']}",
        f" Total Memory: {_human_bytes(d['MemTotal'])}",
        f" Name: {d['Name']}",
        f" Docker Root Dir: {d['DockerRootDir']}",
        f" Exec Root: {d['ExecRoot']}",
        f" Config File: {d['ConfigFile']}",
        f" Debug Mode: {str(d['Debug']).lower()}",
        f" User: {r['User']} (uid {r['UID']}, gid {r['GID']})",
        " UID Map:",
    ]
    out += [f"  {m}" for m in r["UIDMap"]]
    out.append(" GID Map:")
    out += [f"  {m}" for m in r["GIDMap"]]
    out.append(" Host Tools:")
    for name, t in r["HostTools"].items():
        if t["Path"]:
            out.append(f"  {name}: {t['Path']}" + (f" ({t['Version']})" if t["Version"] else ""))
        else:
            out.append(f"  {name}: not found")
    out.append(" Registry Mirrors:")
    out += [f"  {m}" for m in d["RegistryConfig"]["Mirrors"]]
    out.append(" Insecure Registries:")
    out += [f"  {m}" for m in d["RegistryConfig"]["InsecureRegistryCIDRs"]]
    if d["Labels"]:
        out.append(" Labels:")
        out += [f"  {lbl}" for lbl in d["Labels"]]
    return "\n".join(out) + "\n"
