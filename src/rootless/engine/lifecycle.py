"""Orchestration of containers: create, start, run, rm, and finding a container by id or name.

The engine is the one place that knows every layer: it reads the image (image/), asks the storage
driver for a rootfs plan (storage/), generates the OCI spec (oci/) and hands both to the runtime
(runtime/), or writes a bundle for an external runtime (crun, runc). The runtime never sees the
storage driver: it gets a plan and an ``on_ready(pid)`` callback.

The hot path of ``run`` for a local image imports neither requests nor pyroute2: the image is
pulled (``image.pull``) only when missing or when ``--pull always`` says so.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from rootless import state as st
from rootless.engine import events
from rootless.errors import EXIT_ENGINE, NotFound, RootlessError
from rootless.oci import spec as ocispec
from rootless.report import Reporter
from rootless.value import Value

OUR_RUNTIMES = ("rootless", "")


class CreateOptions(Value):
    """Everything `create`/`run` were given, parsed, before any lookup."""

    __slots__ = (
        "image", "run", "user", "name", "auto_remove", "pull", "platform", "quiet_pull", "dns",
        "dns_search", "dns_options", "add_hosts", "runtime", "network", "publish", "publish_all",
        "limits", "host_extra",
    )
    image: str
    run: ocispec.RunOptions
    user: str  # -u: resolved against the image's /etc/passwd at start
    name: str
    auto_remove: bool
    pull: str  # missing | always | never
    platform: Optional[str]
    quiet_pull: bool
    dns: Tuple[str, ...]
    dns_search: Tuple[str, ...]
    dns_options: Tuple[str, ...]
    add_hosts: Tuple[str, ...]  # "name:ip"
    runtime: str  # "" = the configured default-runtime
    network: str  # --network as given ("" = the config's network-mode)
    publish: Tuple[str, ...]  # -p values
    publish_all: bool  # -P
    limits: Dict[str, Any]  # rootless.limits.Limits.to_dict()
    # HostConfig keys from hostflags.host_config_extras: RestartPolicy, LogConfig, Binds, Mounts, VolumesFrom
    host_extra: Tuple[Tuple[str, Any], ...]

    def __init__(
        self,
        image: str,
        run: ocispec.RunOptions,
        user: str = "",
        name: str = "",
        auto_remove: bool = False,
        pull: str = "missing",
        platform: Optional[str] = None,
        quiet_pull: bool = False,
        dns: Tuple[str, ...] = (),
        dns_search: Tuple[str, ...] = (),
        dns_options: Tuple[str, ...] = (),
        add_hosts: Tuple[str, ...] = (),
        runtime: str = "",
        network: str = "",
        publish: Tuple[str, ...] = (),
        publish_all: bool = False,
        limits: Optional[Dict[str, Any]] = None,
        host_extra: Tuple[Tuple[str, Any], ...] = (),
    ) -> None:
        self.image = image
        self.run = run
        self.user = user
        self.name = name
        self.auto_remove = auto_remove
        self.pull = pull
        self.platform = platform
        self.quiet_pull = quiet_pull
        self.dns = dns
        self.dns_search = dns_search
        self.dns_options = dns_options
        self.add_hosts = add_hosts
        self.runtime = runtime
        self.network = network
        self.publish = publish
        self.publish_all = publish_all
        self.limits = {} if limits is None else limits
        self.host_extra = host_extra


# --- images ----------------------------------------------------------------------------------------


def get_image(config, ref: str, policy: str = "missing", platform: Optional[str] = None, quiet: bool = False,
              out=None):
    """The image ``ref`` from the store, pulled first when the policy says so."""
    from rootless.image.store import ImageStore

    if policy not in ("missing", "always", "never"):
        raise RootlessError(f"use --pull `{policy}`: unknown policy", "use missing, always or never")
    store = ImageStore(config.data_root)
    img = None if policy == "always" else store.lookup(ref)
    if img is not None:
        return img
    if policy == "never":
        raise RootlessError(
            f"find image `{ref}`: no such image in the local store",
            f"pull it first (`rootless pull {ref}`), or drop --pull never",
        )
    from rootless.image import pull  # imports requests: only now

    out = out if out is not None else sys.stderr
    if policy == "missing" and not quiet:
        out.write(f"Unable to find image '{ref}' locally\n")
        out.flush()
    img = pull.pull(config, ref, platform=platform, quiet=quiet, out=out)
    events.image_ref(config, "pull", ref)
    return img


_LAYERS_SEEN: Dict[Tuple[str, str], List[str]] = {}


def layer_paths(config, image, fmt: str) -> List[str]:
    """Bottom-first layer directories of ``image`` in format ``fmt``.

    Fast path (the ``run`` of a local image): every layer is already unpacked, so the paths are
    found with one stat each, as ``storage.layers.LayerStore.path`` lays them out, without importing
    the pull and unpack machinery. Otherwise ``image.pull.ensure_layers`` unpacks what is missing.
    """
    key = (image.id, fmt)
    if key in _LAYERS_SEEN:
        return list(_LAYERS_SEEN[key])
    out: List[str] = []
    for chain in image.chain_ids:
        hexd = chain[7:] if chain.startswith("sha256:") else ""
        if len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
            break
        d = os.path.join(config.data_root, fmt, "layers", hexd)
        p = os.path.join(d, "diff") if fmt == "overlay" else d
        if not os.path.isdir(p):
            break
        out.append(p)
    if not out or len(out) != len(image.chain_ids):
        from rootless.image import pull

        out = list(pull.ensure_layers(config, image, fmt))
    _LAYERS_SEEN[key] = list(out)
    return out


# --- runtimes --------------------------------------------------------------------------------------


class RuntimeChoice(Value):
    __slots__ = ("name", "path", "args")
    name: str  # "rootless" for ours
    path: str  # for external ones
    args: Tuple[str, ...]

    def __init__(self, name: str, path: str = "", args: Tuple[str, ...] = ()) -> None:
        self.name = name
        self.path = path
        self.args = args

    @property
    def ours(self) -> bool:
        return self.name in OUR_RUNTIMES


def choose_runtime(config, name: str = "") -> RuntimeChoice:
    """``--runtime`` or ``default-runtime``: ours, a name from ``runtimes``, crun/runc on PATH, or a path."""
    from rootless import tools

    name = name or config.default_runtime or "rootless"
    if name in OUR_RUNTIMES:
        return RuntimeChoice("rootless")
    table = config.runtimes or {}
    if name in table:
        path = table[name]["path"]
        exe = tools.which(path)
        if exe is None:
            raise RootlessError(f"use runtime `{name}`: `{path}` is not an executable",
                                "fix `runtimes` in daemon.toml, or install it")
        return RuntimeChoice(name, exe, tuple(table[name].get("runtimeArgs") or ()))
    exe = tools.which(name)
    if exe is None:
        raise RootlessError(
            f"use runtime `{name}`: unknown runtime",
            "configure it under `runtimes` in daemon.toml, install it (crun, runc), or use `rootless`",
        )
    return RuntimeChoice(os.path.basename(name), exe, ())


# --- create ----------------------------------------------------------------------------------------


def _labels(opts: ocispec.RunOptions, image_config: Dict[str, Any]) -> Dict[str, str]:
    labels = dict(image_config.get("Labels") or {})
    labels.update(dict(opts.labels))
    return labels


def effective_command(image_config: Dict[str, Any], opts: ocispec.RunOptions) -> Tuple[List[str], List[str]]:
    """(Entrypoint, Cmd) as docker stores them in the container's Config."""
    img_ep = list(image_config.get("Entrypoint") or [])
    img_cmd = list(image_config.get("Cmd") or [])
    if opts.entrypoint is None:
        ep, cmd = img_ep, list(opts.cmd) or img_cmd
    elif len(opts.entrypoint) == 0:
        ep, cmd = [], list(opts.cmd) or img_cmd
    else:
        ep, cmd = list(opts.entrypoint), list(opts.cmd)
    if not ep and not cmd:
        raise RootlessError("create container: no command specified",
                            "give a command after the image name, or use an image with a CMD or ENTRYPOINT")
    return ep, cmd


class _LightMode(Value):
    """--network none or host: what create() needs of rootless.network.NetworkMode."""

    __slots__ = ("kind",)
    kind: str

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __str__(self) -> str:
        return self.kind


def _write_small(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def gc_auto_removed(config, store: st.Store, reporter: Reporter) -> None:
    """Remove --rm containers whose `rootless run` was killed before it could remove them."""
    for cid in store.ids():
        try:
            rec = store.load(cid)
        except RootlessError:
            continue
        hc = rec.get("HostConfig") or {}
        s = rec.get("State") or {}
        if hc.get("AutoRemove") and s.get("Status") == "exited" and not s.get("Running"):
            try:
                remove(config, cid, force=True, store=store, reporter=reporter)
            except RootlessError:
                pass


def create(config, opts: CreateOptions, *, reporter: Reporter, out=None) -> st.Record:
    """Make a container record (status `created`) and its writable layer; return the record."""
    from rootless.storage import select

    net_text = opts.network or config.network_mode
    light = net_text in ("none", "host") and not (opts.publish or opts.publish_all)
    if light:  # the common fast cases need nothing of rootless.network (start-up time)
        mode = _LightMode(net_text)
    else:
        from rootless import network

        mode = network.parse_mode(net_text, data_root=config.data_root)
    if mode.kind == "container":
        other = st.Store(config.data_root).resolve(mode.container)
        if not (other["State"].get("Running") and st.is_alive(other["State"])):
            raise RootlessError(f"join the network of container `{mode.container}`: it is not running",
                                f"start it first (`rootless start {mode.container}`)")
        mode = network.NetworkMode("container", container=other["Id"])
    mode_text = str(mode) if mode.kind == "container" else (opts.network or config.network_mode)
    if opts.limits:
        from rootless import cgroups, limits

        cgroups.Manager.check(limits.Limits.from_dict(opts.limits))  # never ignore a limit: fail now
    runtime = choose_runtime(config, opts.runtime)
    if not runtime.ours and mode.kind in ("slirp4netns", "helper", "user"):
        # The network is set up from on_ready(pid of the container's init), which an external
        # runtime's `run` does not give us. Say so, and use the loopback-only network.
        if opts.network or opts.publish or opts.publish_all:
            raise RootlessError(f"use network `{mode}` with runtime `{runtime.name}`: not supported yet",
                                "use --network none or host with an external runtime, or the default runtime")
        reporter.warn(f"runtime `{runtime.name}`: the container gets the `none` network (loopback only)",
                      "slirp4netns networking needs the default runtime")
        mode = network.NetworkMode("none")
        mode_text = "none"
    if not runtime.ours and (opts.run.init or opts.run.tty):
        flag = "--init" if opts.run.init else "-t"
        raise RootlessError(f"use {flag} with runtime `{runtime.name}`: not supported (it needs our own runtime)",
                            f"drop {flag}, or use the default runtime")
    image = get_image(config, opts.image, opts.pull, opts.platform, opts.quiet_pull, out)
    icfg = dict(image.config.get("config") or {})
    ep, cmd = effective_command(icfg, opts.run)
    ports = [] if light else network.parse_ports(opts.publish, publish_all=opts.publish_all,
                                                   exposed=list(icfg.get("ExposedPorts") or {}))
    try:
        ocispec.capabilities(opts.run)  # unknown capability names fail now, not at start
    except ocispec.SpecError as e:
        raise RootlessError(f"create container: {e}", "see capabilities(7) for the names")
    driver_choice = select.choose(config)
    if not runtime.ours and driver_choice.name == "overlay2":
        raise RootlessError(
            f"use runtime `{runtime.name}` with the overlay2 storage driver: the overlay is mounted inside our "
            "own runtime's user namespace, which an external runtime does not have",
            'set storage-driver = "vfs" or "fuse-overlayfs" in daemon.toml to use an external runtime',
        )
    store = st.Store(config.data_root)
    os.makedirs(store.root, mode=0o700, exist_ok=True)
    gc_auto_removed(config, store, reporter)
    cid = st.new_id()
    name = st.check_name(opts.name) if opts.name else st.random_name()
    hostname = opts.run.hostname or cid[:12]
    env = ocispec.merge_env(list(icfg.get("Env") or []), list(opts.run.env))
    workdir = opts.run.workdir or icfg.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise RootlessError(f"use working directory `{workdir}`: not an absolute path", "give -w an absolute path")
    r = opts.run
    rec: st.Record = {
        "Id": cid,
        "Created": st.now(),
        "Path": (ep + cmd)[0],
        "Args": (ep + cmd)[1:],
        "State": st.new_state(),
        "Image": image.id,
        "ResolvConfPath": store.path(cid, "resolv.conf"),
        "HostnamePath": store.path(cid, "hostname"),
        "HostsPath": store.path(cid, "hosts"),
        "LogPath": store.log_path(cid),
        "Name": "/" + name,
        "RestartCount": 0,
        "Driver": driver_choice.name,
        "Platform": "linux",
        "Config": {
            "Hostname": hostname,
            "Domainname": "",
            "User": opts.user or icfg.get("User") or "",
            "AttachStdin": r.stdin_open,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": r.tty,
            "OpenStdin": r.stdin_open,
            "StdinOnce": r.stdin_open,
            "Env": env,
            "Cmd": cmd,
            "Image": opts.image,
            "WorkingDir": workdir,
            "Entrypoint": ep if ep else None,
            "Labels": _labels(r, icfg),
            "StopSignal": icfg.get("StopSignal") or "SIGTERM",
        },
        "HostConfig": {
            "AutoRemove": opts.auto_remove,
            "ReadonlyRootfs": r.read_only,
            "Privileged": r.privileged,
            "CapAdd": list(r.cap_add) or None,
            "CapDrop": list(r.cap_drop) or None,
            "SecurityOpt": _security_opt(r),
            "Tmpfs": {p: o for p, o in r.tmpfs} or None,
            "ShmSize": r.shm_size,
            "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in r.ulimits] or None,
            "Init": r.init,
            "Dns": list(opts.dns),
            "DnsSearch": list(opts.dns_search),
            "DnsOptions": list(opts.dns_options),
            "ExtraHosts": list(opts.add_hosts) or None,
            "Runtime": runtime.name,
            "NetworkMode": mode_text,
            "PortBindings": _port_bindings(ports),
            "PublishAllPorts": opts.publish_all,
            **_limit_fields(opts.limits),
        },
        "GraphDriver": {"Name": driver_choice.name, "Data": None},
        "NetworkSettings": {"Ports": {}, "IPAddress": "", "Gateway": ""},
        # rootless's own: how to rebuild the limits and the published ports at start
        "Rootless": {"Limits": dict(opts.limits), "Publish": list(opts.publish), "Net": None, "Cgroup": None},
    }
    _host_extra(config, rec, opts.host_extra)
    store.create(rec, durable=not opts.auto_remove)
    try:
        d = store.dir(cid)
        _write_small(os.path.join(d, "hostname"), hostname + "\n")
        if light:
            from rootless import etcfiles  # the one generator, without the network package

            _write_small(os.path.join(d, "hosts"), etcfiles.hosts_for(mode.kind, hostname, opts.add_hosts))
            _write_small(os.path.join(d, "resolv.conf"), etcfiles.make_resolv(
                mode.kind, etcfiles.read_host_resolv(), dns=list(opts.dns) or list(config.dns),
                dns_search=list(opts.dns_search) or list(config.dns_search),
                dns_opts=list(opts.dns_options) or list(config.dns_opts)))
        else:
            _write_small(os.path.join(d, "hosts"), network.etc_hosts(mode, hostname, add_hosts=opts.add_hosts))
            _write_small(os.path.join(d, "resolv.conf"), network.resolv_conf(
                mode, config, dns=opts.dns, dns_search=opts.dns_search, dns_opts=opts.dns_options))
        layers = layer_paths(config, image, driver_choice.fmt)
        drv = _driver(config, driver_choice.name)
        drv.prepare(cid, layers, volatile=opts.auto_remove)
        rec["GraphDriver"]["Data"] = {"UpperDir": drv.upper_dir(cid)}
        hc = rec["HostConfig"]
        if hc.get("Binds") or hc.get("Mounts") or hc.get("VolumesFrom") or icfg.get("Volumes"):
            from rootless.engine import volumes

            rec["Mounts"] = volumes.prepare(config, rec, icfg, layers, driver_choice.fmt)
        store.save(rec, durable=not opts.auto_remove)
    except BaseException:
        try:
            remove(config, cid, force=True, store=store, reporter=reporter)
        except RootlessError:
            pass
        raise
    events.container(config, rec, "create", reporter)
    return rec


def _host_extra(config, rec: st.Record, extra: Tuple[Tuple[str, Any], ...]) -> None:
    """Restart policy, log config (the config's log-driver/log-opts by default) and volumes."""
    hc = rec["HostConfig"]
    hc.update(dict(extra))
    hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    hc.setdefault("LogConfig", {"Type": config.log_driver or "json-file", "Config": dict(config.log_opts or {})})
    rec.setdefault("Mounts", [])


def _port_bindings(ports) -> Dict[str, List[Dict[str, str]]]:
    """docker's HostConfig.PortBindings: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}."""
    out: Dict[str, List[Dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p.container_port}/{p.proto}", []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""})
    return out


_LIMIT_FIELDS = (  # Limits field -> docker's HostConfig key
    ("memory", "Memory"), ("memory_swap", "MemorySwap"), ("memory_reservation", "MemoryReservation"),
    ("nano_cpus", "NanoCpus"), ("cpu_quota", "CpuQuota"), ("cpu_period", "CpuPeriod"),
    ("cpu_shares", "CpuShares"), ("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems"),
    ("pids_limit", "PidsLimit"), ("blkio_weight", "BlkioWeight"),
)


def _limit_fields(limits: Dict[str, Any]) -> Dict[str, Any]:
    return {key: limits.get(f) or (None if key == "PidsLimit" else "" if key.startswith("Cpuset") else 0)
            for f, key in _LIMIT_FIELDS}


def _driver(config, name: str, ids=None):
    from rootless.storage.base import get_driver

    return get_driver(name, config.data_root, ids)


# --- start -----------------------------------------------------------------------------------------


def _run_options(rec: st.Record) -> ocispec.RunOptions:
    c, h = rec["Config"], rec["HostConfig"]
    ep = c.get("Entrypoint")
    return ocispec.RunOptions(
        cmd=tuple(c.get("Cmd") or ()),
        entrypoint=tuple(ep) if ep else (),
        env=tuple(c.get("Env") or ()),
        workdir=c.get("WorkingDir") or "",
        hostname=c.get("Hostname") or "",
        read_only=bool(h.get("ReadonlyRootfs")),
        tmpfs=tuple((h.get("Tmpfs") or {}).items()),
        tty=bool(c.get("Tty")),
        stdin_open=bool(c.get("OpenStdin")),
        init=bool(h.get("Init")),
        shm_size=int(h.get("ShmSize") or (64 << 20)),
        ulimits=tuple(ocispec.Ulimit(u["Name"], u["Soft"], u["Hard"]) for u in (h.get("Ulimits") or [])),
        cap_add=tuple(h.get("CapAdd") or ()),
        cap_drop=tuple(h.get("CapDrop") or ()),
        privileged=bool(h.get("Privileged")),
        no_new_privileges="no-new-privileges" in (h.get("SecurityOpt") or []),
        seccomp=_seccomp_opt(h.get("SecurityOpt") or []),
        network="host" if h.get("NetworkMode") == "host" else "private",
        labels=tuple((c.get("Labels") or {}).items()),
    )


def _security_opt(r: ocispec.RunOptions) -> Optional[List[str]]:
    """docker's HostConfig.SecurityOpt: ``no-new-privileges``, ``seccomp=unconfined|builtin|{json}``."""
    out = (["no-new-privileges"] if r.no_new_privileges else []) + ([f"seccomp={r.seccomp}"] if r.seccomp else [])
    return out or None


def _seccomp_opt(opts: List[str]) -> str:
    for o in opts:
        if isinstance(o, str) and o[:8] in ("seccomp=", "seccomp:"):
            return o[8:]
    return ""


def build_spec(config, rec: st.Record, rootfs: str, read_file: Callable[[str], Optional[bytes]], ids,
               cgroup_ns: Optional[bool] = None) -> Dict[str, Any]:
    """The OCI spec for this container (the user is resolved in the image's /etc/passwd here)."""
    from rootless import userdb

    opts = _run_options(rec)
    if not opts.seccomp and getattr(config, "seccomp_profile", ""):
        from rootless.oci import seccomp

        opts.seccomp = seccomp.from_config(config.seccomp_profile)  # docker: the daemon's profile, at start
    eu = userdb.resolve(rec["Config"].get("User") or "", read_file)
    user = ocispec.User(eu.uid, eu.gid, eu.additional_gids, eu.home)
    maps = tuple(ids.uid_mappings())
    gmaps = tuple(ids.gid_mappings())
    top = max(m.container + m.count for m in maps) - 1
    if eu.uid > top or eu.gid > max(m.container + m.count for m in gmaps) - 1:
        raise RootlessError(
            f"use user `{rec['Config'].get('User')}` (uid {eu.uid}, gid {eu.gid}): not mapped in the container's "
            f"user namespace (ids 0-{top} are)",
            "without a /etc/subuid range only uid 0 exists in the container; ask for a range, or use -u 0",
        )
    d = os.path.dirname(rec["HostsPath"])
    binds = (
        ocispec.BindFile(os.path.join(d, "hosts"), "/etc/hosts"),
        ocispec.BindFile(os.path.join(d, "hostname"), "/etc/hostname"),
        ocispec.BindFile(os.path.join(d, "resolv.conf"), "/etc/resolv.conf"),
    )
    if cgroup_ns is None:
        cgroup_ns = os.path.exists("/proc/self/ns/cgroup")
    inp = ocispec.SpecInput(
        image_config={},
        options=opts,
        rootfs=rootfs,
        user=user,
        uid_mappings=maps,
        gid_mappings=gmaps,
        hostname=opts.hostname,
        bind_files=binds,
        cgroup_ns=cgroup_ns,
        container_id=rec["Id"],
    )
    try:
        spec = ocispec.generate(inp)
    except ocispec.SpecError as e:
        raise RootlessError(f"create the container's spec: {e}", "check the run options")
    net_mode = rec["HostConfig"].get("NetworkMode") or ""
    if net_mode.startswith("container:"):
        _join_container_netns(config, spec, net_mode.split(":", 1)[1])
    elif net_mode and net_mode.partition(":")[0] not in ("none", "host", "slirp4netns", "bridge", "default", "slirp",
                                                         "helper"):
        from rootless import network
        from rootless.network import usernet

        mode = network.parse_mode(net_mode, data_root=config.data_root)  # a user network (or an error)
        usernet.join_spec(config.data_root, config.exec_root, spec, mode.network, rec["Id"], ids)
    return spec


def _join_container_netns(config, spec: Dict[str, Any], other_id: str) -> None:
    """--network container:X: join X's network namespace, and its user namespace, which owns it
    (setns into a network namespace needs CAP_SYS_ADMIN in the user namespace that owns it)."""
    other = st.Store(config.data_root).resolve(other_id)
    os_ = other["State"]
    if not (os_.get("Running") and st.is_alive(os_)):
        raise RootlessError(f"join the network of container `{other['Name'].lstrip('/')}`: it is not running",
                            "start it first, then this one")
    pid = int(os_["Pid"])
    nss = [n for n in spec["linux"]["namespaces"] if n["type"] not in ("network", "user")]
    nss += [{"type": "user", "path": f"/proc/{pid}/ns/user"}, {"type": "network", "path": f"/proc/{pid}/ns/net"}]
    spec["linux"]["namespaces"] = nss


class Started:
    """A started container. ``wait()`` records the exit (and removes an --rm container)."""

    def __init__(self, config, store: st.Store, rec: st.Record, proc, cleanup: Callable[[], None], reporter: Reporter):
        self.config = config
        self.reporter = reporter
        self.store = store
        self.rec = rec
        self.proc = proc
        self._cleanup = cleanup
        self.exit_code: Optional[int] = None
        self.cleanup_error: Optional[RootlessError] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pty_master(self) -> Optional[int]:
        return getattr(self.proc, "pty_master", None)

    def kill(self, sig: int) -> None:
        try:
            self.proc.kill(sig)
        except (OSError, RootlessError):
            pass

    def wait(self) -> int:
        if self.exit_code is not None:
            return self.exit_code
        code = int(self.proc.wait())
        self.exit_code = code
        try:
            finish(self.config, self.store, self.rec, code, "", self._cleanup, reporter=self.reporter)
        except RootlessError as e:  # the container's status matters more: keep it, report this
            self.cleanup_error = e
        return code


def finish(config, store: st.Store, rec: st.Record, code: int, error: str, cleanup: Callable[[], None], *,
           reporter: Reporter) -> None:
    try:
        cleanup()
    finally:
        s = rec["State"]
        s.update(Status="exited", Running=False, Pid=0, PidStartTime=0, ExitCode=code, Error=error,
                 FinishedAt=st.now())
        events.container(config, rec, "die", reporter, exitCode=code)  # a failed start, an in-process run
        if rec["HostConfig"].get("AutoRemove"):
            remove(config, rec["Id"], force=True, store=store, rec=rec, reporter=reporter)
            if rec.get("Mounts"):  # docker's --rm takes the anonymous volumes too
                from rootless.engine import volumes

                volumes.remove_anonymous(config, rec)
        elif os.path.isdir(store.dir(rec["Id"])):  # not removed meanwhile (`rm -f`)
            keep_updates(store, rec)
            store.save(rec)


def keep_updates(store: st.Store, rec: st.Record) -> None:
    """Take into ``rec`` what `rootless update` saved while it ran: the limits and restart policy.

    The process that started a container holds its record from the start; saving that copy at
    the exit would undo an update made meanwhile (the next start would use the old limits).
    """
    try:
        saved = store.load(rec["Id"])
    except RootlessError:
        return
    own, hc = saved.get("Rootless") or {}, saved.get("HostConfig") or {}
    if "Limits" in own:
        rec.setdefault("Rootless", {})["Limits"] = own["Limits"]
    for key in [k for _, k in _LIMIT_FIELDS] + ["RestartPolicy"]:
        if key in hc:
            rec["HostConfig"][key] = hc[key]


def start(config, ref: str, *, reporter: Reporter, stdio=None, store: Optional[st.Store] = None, ids=None) -> Started:
    """Start container ``ref`` (created or exited) and return it running."""
    store = store or st.Store(config.data_root)
    rec = store.resolve(ref)
    return start_record(config, store, rec, stdio=stdio, ids=ids, reporter=reporter)


class _StartFailed(Exception):
    def __init__(self, error: BaseException, code: int, message: str):
        super().__init__(message)
        self.error, self.code, self.message = error, code, message


def start_record(config, store: st.Store, rec: st.Record, *, reporter: Reporter, stdio=None, ids=None,
                 state_extra: Optional[Dict[str, Any]] = None) -> Started:
    """Start ``rec``: under the container's lock, check it is not running, spawn it, save its pid
    (and ``state_extra``, e.g. the monitor's pid, in the same save).

    A failure after the check is recorded in the container's state (ExitCode, Error), and a
    container created with --rm is removed, before the error is raised again.
    """
    cid = rec["Id"]
    try:
        with store.lock(cid):
            fresh = store.load(cid)
            fresh["Config"] = rec["Config"]  # what the caller asked for this start (start -i)
            rec = fresh
            rec["State"].update(state_extra or {})
            if rec["State"].get("Running"):
                raise RootlessError(f"start container `{rec['Name'].lstrip('/')}`: it is already running",
                                    "stop it first, or use `rootless exec`")
            proc, cleanup = _spawn(config, store, rec, stdio, ids, reporter)
    except _StartFailed as f:
        finish(config, store, rec, f.code, f.message, lambda: None, reporter=reporter)
        raise f.error
    events.container(config, rec, "start", reporter)
    return Started(config, store, rec, proc, cleanup, reporter)


def _spawn(config, store: st.Store, rec: st.Record, stdio, ids, reporter: Reporter):
    from rootless import idmap

    cid = rec["Id"]
    s = rec["State"]
    try:
        ids = ids or idmap.load()
        durable = not rec["HostConfig"].get("AutoRemove")
        runtime = choose_runtime(config, rec["HostConfig"].get("Runtime") or "")
        drv = _driver(config, rec["Driver"], ids)
        from rootless.image.store import ImageStore

        image = ImageStore(config.data_root).get(rec["Image"])
        if image is None:
            raise NotFound(f"start container `{rec['Name'].lstrip('/')}`: its image `{rec['Image'][7:19]}` is gone",
                           "remove the container and run it again from a pulled image", exit_code=EXIT_ENGINE)
        layers = layer_paths(config, image, drv.fmt)
        plan = drv.prepare(cid, layers, volatile=bool(rec["HostConfig"].get("AutoRemove")))
        spec = build_spec(config, rec, plan.rootfs, lambda p: drv.read_file(cid, layers, p), ids)
        if rec.get("Mounts"):  # volumes and binds (rootless.engine.volumes), after the spec's own mounts
            from rootless.engine import volumes

            volumes.check_sources(rec["Mounts"])
            spec["mounts"] = list(spec["mounts"]) + volumes.spec_mounts(rec["Mounts"])
        from rootless.oci import bundle as ocibundle

        bundle = store.path(cid, "bundle")
        attach = _Attachments(config, store, rec, image, reporter, external=not runtime.ours)
        s.update(Status="running", Running=True, Error="", ExitCode=0, StartedAt=st.now(), FinishedAt=st.ZERO_TIME,
                 OOMKilled=False)

        def on_ready(pid: int) -> None:
            s.update(Pid=pid, PidStartTime=st.proc_start_time(pid) or 0)
            attach.on_ready(pid)  # cgroup, then network (raises: the runtime kills the container)
            store.save(rec, durable=durable)
            # beside the record: what still says "running, using these volumes" if it is damaged
            store.save_alive_marker(rec)

        if runtime.ours:
            from rootless import runtime as rt

            ocibundle.write(bundle, spec)  # the same bundle `rootless runtime run`, crun or runc can run
            try:
                proc = rt.spawn(spec, ids=ids, rootfs_plan=plan, stdio=stdio or rt.Stdio(), on_ready=on_ready,
                                name=cid, bundle=bundle)
            except BaseException:
                attach.teardown()
                raise
            return proc, attach.teardown
        try:
            proc, ext_cleanup = ocibundle.start(config, runtime, bundle, cid, spec, plan, ids, stdio, on_ready)
        except BaseException:
            attach.teardown()
            raise

        def cleanup() -> None:
            try:
                ext_cleanup()
            finally:
                attach.teardown()

        return proc, cleanup
    except RootlessError as e:
        raise _StartFailed(e, e.exit_code if e.exit_code in (126, 127) else EXIT_ENGINE, e.message)
    except BaseException as e:
        raise _StartFailed(e, EXIT_ENGINE, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)


class _Attachments:
    """What a running container has besides its processes: a cgroup and its network.

    Both are set up in the runtime's on_ready(pid) (the init exists, has not exec'd), recorded
    in the container's state, and torn down when it exits or is removed, from any process.
    """

    def __init__(self, config, store: st.Store, rec: st.Record, image, reporter: Reporter, external: bool = False):
        self.config, self.store, self.rec = config, store, rec
        self.reporter = reporter
        self.external = external
        self.cgroup = None
        self.net = None
        hc = rec["HostConfig"]
        own = rec.setdefault("Rootless", {})
        self.limits = None
        if own.get("Limits"):  # rootless.limits and .cgroups are imported only when needed (start-up time)
            from rootless import limits

            self.limits = limits.Limits.from_dict(own["Limits"])
        self.mode_text = hc.get("NetworkMode") or ""
        self.publish = list(own.get("Publish") or [])
        self.publish_all = bool(hc.get("PublishAllPorts"))
        self.exposed = list((image.config.get("config") or {}).get("ExposedPorts") or {})

    def on_ready(self, pid: int) -> None:
        own = self.rec["Rootless"]
        # No limits asked: a cgroup anyway where cgroup v2 is mounted (stats, OOM, pause); on a
        # v1/hybrid host there is nothing to do, and one stat() says so.
        if self.limits or os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            from rootless import cgroups, limits

            self.cgroup = cgroups.Manager.for_container(self.rec["Id"], self.limits or limits.Limits.empty)
            if self.cgroup is not None:
                own["Cgroup"] = self.cgroup.to_json()
                self.cgroup.add_pid(pid)
        text = self.mode_text or self.config.network_mode
        if self.external or text in ("host", "none") or text.startswith("container:"):
            # an external runtime sets up its own (loopback-only) network namespace; for `none`
            # our runtime brought lo up itself
            return
        from rootless import network

        mode = network.parse_mode(text, data_root=self.config.data_root)
        ports = network.parse_ports(self.publish, publish_all=self.publish_all, exposed=self.exposed)
        self.net = network.setup(mode, pid, ports, config=self.config, state_dir=self.store.path(self.rec["Id"], "net"),
                                 container_id=self.rec["Id"], name=self.rec.get("Name") or "",
                                 hostname=self.rec["Config"].get("Hostname") or "", hosts_path=self.rec["HostsPath"])
        own["Net"] = self.net.to_json()
        for note in self.net.notes:
            self.reporter.warn(note)
        ns = self.rec.setdefault("NetworkSettings", {})
        ns["Ports"] = _ports_settings(self.net.ports)
        ns["IPAddress"] = self.net.address
        ns["Gateway"] = self.net.gateway
        if mode.kind == "helper" and self.net.address:
            from rootless.network import hosts

            text = network.etc_hosts(mode, self.rec["Config"].get("Hostname") or "", address=self.net.address,
                                     gateway=self.net.gateway,
                                     add_hosts=self.rec["HostConfig"].get("ExtraHosts") or ())
            hosts.write_in_place(self.rec["HostsPath"], text)

    def teardown(self) -> None:
        teardown_attachments(self.rec, cgroup=self.cgroup, net=self.net, reporter=self.reporter)


def _ports_settings(ports) -> Dict[str, List[Dict[str, str]]]:
    out: Dict[str, List[Dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p.container_port}/{p.proto}", []).append(
            {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)})
    return out


def teardown_attachments(rec: st.Record, *, reporter: Reporter, cgroup=None, net=None) -> None:
    """Stop the container's network helpers and remove its cgroup (idempotent; also after a crash).

    An OOM kill is read from the cgroup before it goes, into State.OOMKilled.
    """
    own = rec.get("Rootless") or {}
    if net is None and own.get("Net"):
        from rootless import network

        try:
            net = network.NetHandle.from_json(own["Net"])
        except (RootlessError, ValueError, KeyError, TypeError):
            net = None
    if net is not None:
        for problem in net.teardown():
            reporter.warn(problem)
        own["Net"] = None
    if cgroup is None and own.get("Cgroup"):
        from rootless import cgroups

        try:
            cgroup = cgroups.CgroupHandle.from_json(own["Cgroup"])
        except (RootlessError, ValueError, KeyError, TypeError):
            cgroup = None
    if cgroup is not None:
        try:
            if cgroup.oom_killed():
                rec.setdefault("State", {})["OOMKilled"] = True
        except (OSError, RootlessError):
            pass
        try:
            cgroup.remove()
        except RootlessError as e:
            reporter.warn(e.message, e.hint)
        own["Cgroup"] = None


def run(config, opts: CreateOptions, *, reporter: Reporter, stdio=None, out=None) -> Started:
    """create + start, as `rootless run` does (attach and wait are the caller's)."""
    rec = create(config, opts, out=out, reporter=reporter)
    store = st.Store(config.data_root)
    return start_record(config, store, rec, stdio=stdio, reporter=reporter)


# --- rm --------------------------------------------------------------------------------------------


def resolve(config, ref: str) -> st.Record:
    return st.Store(config.data_root).resolve(ref)


def remove(config, ref: str, *, reporter: Reporter, force: bool = False, store: Optional[st.Store] = None,
           rec: Optional[st.Record] = None) -> str:
    """Remove a container: its writable layer, its record and files. Returns its id."""

    store = store or st.Store(config.data_root)
    if rec is None:
        try:
            if st.valid_id(ref) and os.path.isdir(os.path.join(store.root, ref)):
                rec = store.load(ref)
            else:
                rec = store.resolve(ref)
        except st.BadRecord as e:
            # a damaged record: removable, but a container still running (its alive marker names a
            # live process) is treated as running, so that only `rm -f` stops it
            if not e.cid:
                raise
            m = store.alive_marker(e.cid)
            state = {"Running": True, "Pid": m["Pid"], "PidStartTime": m["PidStartTime"]} if m else {}
            rec = {"Id": e.cid, "Name": e.cid[:12], "State": state, "Driver": ""}
    cid = rec["Id"]
    import contextlib

    try:
        lock = store.lock(cid)
        lock.__enter__()
    except OSError:  # its directory is already gone: nothing to serialise with
        lock = contextlib.nullcontext()
    try:
        _remove_locked(config, store, rec, force, reporter)
    finally:
        lock.__exit__(None, None, None)
    return cid


def _remove_locked(config, store: st.Store, rec: st.Record, force: bool, reporter: Reporter) -> None:
    import signal

    cid = rec["Id"]
    s = rec.get("State") or {}
    if s.get("Running") and st.is_alive(s):
        if not force:
            raise RootlessError(
                f"remove container `{(rec.get('Name') or cid).lstrip('/')}`: it is running",
                "stop it first, or use `rootless rm -f`",
                exit_code=1,
            )
        try:
            os.kill(int(s["Pid"]), signal.SIGKILL)
        except OSError:
            pass
        _wait_gone(int(s["Pid"]))
    teardown_attachments(rec, reporter=reporter)
    from rootless import idmap

    ids = idmap.load()
    names = [rec.get("Driver")] if rec.get("Driver") else []
    for name in names + [n for n in ("overlay2", "vfs") if n not in names]:
        drv = _driver(config, name, ids)
        if os.path.lexists(drv.container_dir(cid)):
            drv.cleanup(cid)
    store.remove(cid)
    events.container(config, rec, "destroy", reporter)


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            pass
        time.sleep(0.01)
