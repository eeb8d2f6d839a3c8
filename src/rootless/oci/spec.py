"""Image config + run options -> an OCI runtime-spec ``config.json`` (a dict).

A pure function: no files read, no clock, no environment. Everything that depends on the host (id
mappings, whether a cgroup namespace exists, the resolved user) is an argument, so the unit tests
can pin every field, and the same bundle runs under our runtime, crun or runc.

The defaults follow Docker/Moby's ``oci/defaults.go`` and Podman's rootless adjustments:
- capabilities: Docker's default set (``DEFAULT_CAPS``); ``--privileged`` gives all of them, which in a
  user namespace means "all within the namespace", nothing on the host.
- ``/dev/pts`` gets ``gid=5`` only when gid 5 is mapped (a one-id map has no group 5: the mount
  would fail with EINVAL, which is what Podman avoids the same way).
- ``/sys``: a fresh sysfs needs a network namespace we own; with ``--network host`` it is a
  read-only bind of the host's instead (runc's and Podman's rule).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from rootless.idmap import (
    IdMapping as Mapping,  # one uid_map/gid_map line type for the engine and the runtime
)
from rootless.runtime import ANNOTATION_INIT as _ANNOTATION_INIT
from rootless.runtime import DEFAULT_CAPABILITIES as _DEFAULT_CAPABILITIES
from rootless.value import Value

OCI_VERSION = "1.0.2"

# Docker's default capability set (moby oci/caps/defaults.go), kept once, in the runtime.
DEFAULT_CAPS: Tuple[str, ...] = tuple(_DEFAULT_CAPABILITIES)

# Every capability Linux 6.x knows (capability.h), for --privileged and --cap-add ALL.
ALL_CAPS: Tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

MASKED_PATHS: Tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS: Tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)

RLIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Annotation that asks our runtime for its built-in reaping init as pid 1 (`--init`). Other runtimes
# ignore unknown annotations, so the engine refuses --init with them (see engine.py).
ANNOTATION_INIT = _ANNOTATION_INIT


class SpecError(ValueError):
    """The options cannot make a valid spec (e.g. no command). The engine turns it into an error."""


class Ulimit(Value):
    __slots__ = ("name", "soft", "hard")
    name: str  # docker's short name: nofile, nproc, ...
    soft: int
    hard: int

    def __init__(self, name: str, soft: int, hard: int) -> None:
        self.name = name
        self.soft = soft
        self.hard = hard


class User(Value):
    __slots__ = ("uid", "gid", "additional_gids", "home", "umask")
    uid: int
    gid: int
    additional_gids: Tuple[int, ...]
    home: str
    umask: int

    def __init__(
        self,
        uid: int,
        gid: int,
        additional_gids: Tuple[int, ...] = (),
        home: str = "/",
        umask: int = 0o022,
    ) -> None:
        self.uid = uid
        self.gid = gid
        self.additional_gids = additional_gids
        self.home = home
        self.umask = umask


class BindFile(Value):
    """A host file bind-mounted into the container (/etc/hosts, /etc/hostname, /etc/resolv.conf)."""

    __slots__ = ("source", "destination", "read_only")
    source: str
    destination: str
    read_only: bool

    def __init__(self, source: str, destination: str, read_only: bool = False) -> None:
        self.source = source
        self.destination = destination
        self.read_only = read_only


class RunOptions(Value):
    """What `run`/`create` were asked for, already parsed (no host lookups left)."""

    __slots__ = (
        "cmd", "entrypoint", "env", "workdir", "hostname", "read_only", "tmpfs", "tty",
        "stdin_open", "init", "shm_size", "ulimits", "cap_add", "cap_drop", "privileged",
        "no_new_privileges", "network", "labels", "seccomp",
    )
    cmd: Tuple[str, ...]  # the words after IMAGE
    entrypoint: Optional[Tuple[str, ...]]  # None: the image's; (): reset (--entrypoint "")
    env: Tuple[str, ...]  # KEY=VALUE, later ones win over the image's
    workdir: str
    hostname: str
    read_only: bool
    tmpfs: Tuple[Tuple[str, str], ...]  # (path, options)
    tty: bool
    stdin_open: bool
    init: bool
    shm_size: int
    ulimits: Tuple[Ulimit, ...]
    cap_add: Tuple[str, ...]
    cap_drop: Tuple[str, ...]
    privileged: bool
    no_new_privileges: bool
    network: str  # none | host (slirp comes with the network issue)
    labels: Tuple[Tuple[str, str], ...]
    seccomp: str  # "" or "builtin" (docker's default profile), "unconfined", or a profile's JSON

    def __init__(
        self,
        cmd: Tuple[str, ...] = (),
        entrypoint: Optional[Tuple[str, ...]] = None,
        env: Tuple[str, ...] = (),
        workdir: str = "",
        hostname: str = "",
        read_only: bool = False,
        tmpfs: Tuple[Tuple[str, str], ...] = (),
        tty: bool = False,
        stdin_open: bool = False,
        init: bool = False,
        shm_size: int = 64 << 20,
        ulimits: Tuple[Ulimit, ...] = (),
        cap_add: Tuple[str, ...] = (),
        cap_drop: Tuple[str, ...] = (),
        privileged: bool = False,
        no_new_privileges: bool = False,
        network: str = "none",
        labels: Tuple[Tuple[str, str], ...] = (),
        seccomp: str = "",
    ) -> None:
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.env = env
        self.workdir = workdir
        self.hostname = hostname
        self.read_only = read_only
        self.tmpfs = tmpfs
        self.tty = tty
        self.stdin_open = stdin_open
        self.init = init
        self.shm_size = shm_size
        self.ulimits = ulimits
        self.cap_add = cap_add
        self.cap_drop = cap_drop
        self.privileged = privileged
        self.no_new_privileges = no_new_privileges
        self.network = network
        self.labels = labels
        self.seccomp = seccomp


class SpecInput(Value):
    __slots__ = (
        "image_config", "options", "rootfs", "user", "uid_mappings", "gid_mappings", "hostname",
        "bind_files", "cgroup_ns", "container_id", "extra_annotations",
    )
    image_config: Dict[str, Any]  # the image's config (the "config" object of the image config JSON)
    options: RunOptions
    rootfs: str
    user: User
    uid_mappings: Tuple[Mapping, ...]
    gid_mappings: Tuple[Mapping, ...]
    hostname: str
    bind_files: Tuple[BindFile, ...]
    cgroup_ns: bool
    container_id: str
    extra_annotations: Tuple[Tuple[str, str], ...]

    def __init__(
        self,
        image_config: Dict[str, Any],
        options: RunOptions,
        rootfs: str,
        user: User,
        uid_mappings: Tuple[Mapping, ...],
        gid_mappings: Tuple[Mapping, ...],
        hostname: str,
        bind_files: Tuple[BindFile, ...] = (),
        cgroup_ns: bool = True,
        container_id: str = "",
        extra_annotations: Tuple[Tuple[str, str], ...] = (),
    ) -> None:
        self.image_config = image_config
        self.options = options
        self.rootfs = rootfs
        self.user = user
        self.uid_mappings = uid_mappings
        self.gid_mappings = gid_mappings
        self.hostname = hostname
        self.bind_files = bind_files
        self.cgroup_ns = cgroup_ns
        self.container_id = container_id
        self.extra_annotations = extra_annotations


# --- pieces, each pure ------------------------------------------------------------------------------


def normalize_cap(name: str) -> str:
    """``net_admin`` / ``NET_ADMIN`` / ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``all`` -> ``ALL``."""
    n = name.strip().upper()
    if n == "ALL":
        return "ALL"
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in ALL_CAPS:
        raise SpecError(f"unknown capability `{name}`")
    return n


def capabilities(opts: RunOptions) -> List[str]:
    """Docker's rule: start from the default set (all with --privileged), add, then drop.

    ``--cap-drop ALL --cap-add X`` gives exactly X: the adds are applied after a drop of ALL.
    """
    if opts.privileged:
        return list(ALL_CAPS)
    adds = [normalize_cap(c) for c in opts.cap_add]
    drops = [normalize_cap(c) for c in opts.cap_drop]
    if "ALL" in adds:
        out = [c for c in ALL_CAPS if c not in drops]
    else:
        out = [] if "ALL" in drops else [c for c in DEFAULT_CAPS if c not in drops]
        for c in adds:
            if c not in out:
                out.append(c)
    order = {c: i for i, c in enumerate(ALL_CAPS)}
    return sorted(out, key=lambda c: order[c])


def merge_env(image_env: Sequence[str], user_env: Sequence[str]) -> List[str]:
    """Image env, then the user's; a later KEY replaces an earlier one in place (docker's order)."""
    out: List[str] = []
    index: Dict[str, int] = {}
    for item in list(image_env) + list(user_env):
        key = item.split("=", 1)[0]
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return out


def command(image_config: Dict[str, Any], opts: RunOptions) -> List[str]:
    """Entrypoint + Cmd with Docker's override rules.

    - no --entrypoint: image Entrypoint + (the given command, else image Cmd);
    - --entrypoint X: X + the given command (the image's Cmd is dropped, as docker does);
    - --entrypoint "": no entrypoint; the given command, else image Cmd.
    """
    img_ep = list(image_config.get("Entrypoint") or [])
    img_cmd = list(image_config.get("Cmd") or [])
    if opts.entrypoint is None:
        args = img_ep + (list(opts.cmd) or img_cmd)
    elif len(opts.entrypoint) == 0:
        args = list(opts.cmd) or img_cmd
    else:
        args = list(opts.entrypoint) + list(opts.cmd)
    if not args:
        raise SpecError("no command specified")
    return args


def process_env(inp: SpecInput, hostname: str) -> List[str]:
    base = ["PATH=" + DEFAULT_PATH, "HOSTNAME=" + hostname]
    if inp.options.tty:
        base.append("TERM=xterm")
    env = merge_env(base, list(inp.image_config.get("Env") or []))
    env = merge_env(env, list(inp.options.env))
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + (inp.user.home or "/"))
    return env


def _mapped(maps: Sequence[Mapping], cid: int) -> bool:
    return any(m.container <= cid < m.container + m.count for m in maps)


def mounts(inp: SpecInput) -> List[Dict[str, Any]]:
    opts = inp.options
    out: List[Dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    ]
    pts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if _mapped(inp.gid_mappings, 5):
        pts.append("gid=5")
    out.append({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": pts})
    out.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={opts.shm_size}"]})
    out.append({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"]})
    if opts.network == "host":
        out.append({"destination": "/sys", "type": "bind", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    else:
        out.append({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                    "options": ["nosuid", "noexec", "nodev", "ro"]})
    for path, tmpfs_opts in opts.tmpfs:
        o = [x for x in tmpfs_opts.split(",") if x] if tmpfs_opts else []
        if not o:
            o = ["rw", "noexec", "nosuid", "nodev"]
        out.append({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": o})
    for bf in inp.bind_files:
        o = ["rbind", "rprivate"] + (["ro"] if bf.read_only else [])
        out.append({"destination": bf.destination, "type": "bind", "source": bf.source, "options": o})
    return out


def rlimits(opts: RunOptions) -> List[Dict[str, Any]]:
    out = []
    for u in opts.ulimits:
        t = RLIMITS.get(u.name)
        if t is None:
            raise SpecError(f"unknown ulimit `{u.name}`")
        out.append({"type": t, "hard": u.hard, "soft": u.soft})
    return out


def namespaces(opts: RunOptions, cgroup_ns: bool) -> List[Dict[str, str]]:
    ns = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}]
    if opts.network != "host":
        ns.append({"type": "network"})
    if cgroup_ns:
        ns.append({"type": "cgroup"})
    return ns


def generate(inp: SpecInput) -> Dict[str, Any]:
    """The whole config.json for one container."""
    opts = inp.options
    hostname = inp.hostname
    args = command(inp.image_config, opts)
    cwd = opts.workdir or inp.image_config.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise SpecError(f"the working directory `{cwd}` is not an absolute path")
    caps = capabilities(opts)
    process: Dict[str, Any] = {
        "terminal": bool(opts.tty),
        "user": {"uid": inp.user.uid, "gid": inp.user.gid, "umask": inp.user.umask},
        "args": args,
        "env": process_env(inp, hostname),
        "cwd": cwd,
        "capabilities": {
            "bounding": list(caps),
            "effective": list(caps),
            "permitted": list(caps),
        },
        "noNewPrivileges": bool(opts.no_new_privileges),
    }
    if inp.user.additional_gids:
        process["user"]["additionalGids"] = list(inp.user.additional_gids)
    rl = rlimits(opts)
    if rl:
        process["rlimits"] = rl
    linux: Dict[str, Any] = {
        "uidMappings": [{"containerID": m.container, "hostID": m.host, "size": m.count} for m in inp.uid_mappings],
        "gidMappings": [{"containerID": m.container, "hostID": m.host, "size": m.count} for m in inp.gid_mappings],
        "namespaces": namespaces(opts, inp.cgroup_ns),
    }
    if not opts.privileged and opts.seccomp != "unconfined":
        from rootless.oci import seccomp

        linux["seccomp"] = seccomp.for_container(opts.seccomp, caps)
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    annotations: Dict[str, str] = {}
    for k, v in opts.labels:
        annotations[k] = v
    if opts.init:
        annotations[ANNOTATION_INIT] = "true"
    for k, v in inp.extra_annotations:
        annotations[k] = v
    spec: Dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": bool(opts.read_only)},
        "hostname": hostname,
        "mounts": mounts(inp),
        "linux": linux,
    }
    if annotations:
        spec["annotations"] = annotations
    return spec


# --- parsing helpers for the CLI and the API (pure too) ---------------------------------------------


def parse_ulimit(text: str) -> Ulimit:
    """docker's ``--ulimit nofile=1024:2048`` (or ``nofile=1024``: soft = hard)."""
    name, sep, val = text.partition("=")
    if not sep or not name or not val:
        raise SpecError(f"invalid ulimit `{text}`: expected NAME=SOFT[:HARD]")
    if name not in RLIMITS:
        raise SpecError(f"invalid ulimit `{text}`: unknown name `{name}` (known: {', '.join(sorted(RLIMITS))})")
    soft_s, _, hard_s = val.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise SpecError(f"invalid ulimit `{text}`: soft and hard must be integers")
    if soft > hard and hard >= 0:
        raise SpecError(f"invalid ulimit `{text}`: soft {soft} is above hard {hard}")
    return Ulimit(name, soft, hard)


def parse_tmpfs(text: str) -> Tuple[str, str]:
    path, _, opts = text.partition(":")
    if not path.startswith("/"):
        raise SpecError(f"invalid --tmpfs `{text}`: the path must be absolute")
    return path, opts
