"""Volumes: bind mounts (-v /host:/ctr), named volumes under data-root/volumes/<name>/_data, the
image's anonymous VOLUMEs, --mount type=bind|volume|tmpfs, and the `volume` command's store.

Parsing is pure (``parse_cli``); ``prepare`` runs at create (it creates missing -v host dirs and
named volumes, and records docker's ``Mounts``); ``spec_mounts`` turns a record into OCI mounts.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from rootless import paths, timefmt
from rootless.engine import events
from rootless.errors import NotFound, RootlessError, UsageError
from rootless.storage.base import is_opaque, is_whiteout

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def parse_cli(volumes: List[str], mounts: List[str]) -> Tuple[List[str], List[Dict[str, Any]]]:
    """(-v specs checked, --mount specs as docker's HostConfig.Mounts entries)."""
    binds = []
    for v in volumes:
        parse_volume(v)
        binds.append(v)
    out = [parse_mount(m) for m in mounts]
    return binds, out


def parse_volume(spec: str) -> Dict[str, Any]:
    """-v SRC:DST[:OPTS] or -v DST (anonymous). Returns {Type, Source, Target, ReadOnly}."""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, opts = "", parts[0], ""
    elif len(parts) == 2:
        src, dst, opts = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, opts = parts
    else:
        raise UsageError(f"invalid volume specification `{spec}`", "use SRC:DST[:ro|rw], NAME:DST or DST")
    if not dst.startswith("/"):
        raise UsageError(f"invalid volume specification `{spec}`: the container path `{dst}` is not absolute",
                         "use an absolute path inside the container")
    ro = False
    for o in [x for x in opts.split(",") if x]:
        if o == "ro":
            ro = True
        elif o in ("rw", "z", "Z", "rprivate", "private", "rshared", "shared", "rslave", "slave", "nocopy"):
            continue
        else:
            raise UsageError(f"invalid volume specification `{spec}`: unknown option `{o}`", "use ro or rw")
    if not src:
        kind = "volume"
    elif src.startswith("/"):
        kind = "bind"
    elif src.startswith(".") or "/" in src:
        raise UsageError(f"invalid volume specification `{spec}`: `{src}` is neither an absolute path nor a name",
                         "give an absolute host path, or a volume name")
    else:
        check_name(src)
        kind = "volume"
    return {"Type": kind, "Source": src, "Target": os.path.normpath(dst), "ReadOnly": ro,
            "Nocopy": "nocopy" in opts.split(",")}


def parse_mount(spec: str) -> Dict[str, Any]:
    d: Dict[str, Any] = {"Type": "volume", "Source": "", "Target": "", "ReadOnly": False}
    for item in spec.split(","):
        k, sep, v = item.partition("=")
        k = k.strip()
        if k in ("type",):
            d["Type"] = v
        elif k in ("source", "src"):
            d["Source"] = v
        elif k in ("target", "destination", "dst"):
            d["Target"] = v
        elif k in ("readonly", "ro"):
            d["ReadOnly"] = (not sep) or v in ("1", "true")
        elif k == "tmpfs-size":
            d.setdefault("TmpfsOptions", {})["SizeBytes"] = _size(v)
        elif k == "tmpfs-mode":
            d.setdefault("TmpfsOptions", {})["Mode"] = int(v, 8)
        elif k in ("bind-propagation", "volume-nocopy", "consistency", "volume-driver"):
            continue
        else:
            raise UsageError(f"invalid --mount `{spec}`: unknown key `{k}`",
                             "use type=bind|volume|tmpfs,source=...,target=...[,readonly]")
    if d["Type"] not in ("bind", "volume", "tmpfs"):
        raise UsageError(f"invalid --mount `{spec}`: type `{d['Type']}` is not supported", "use bind, volume or tmpfs")
    if not d["Target"].startswith("/"):
        raise UsageError(f"invalid --mount `{spec}`: target must be an absolute path", "add target=/path")
    if d["Type"] == "bind" and not d["Source"].startswith("/"):
        raise UsageError(f"invalid --mount `{spec}`: a bind needs an absolute source", "add source=/host/path")
    if d["Type"] == "tmpfs" and d["Source"]:
        raise UsageError(f"invalid --mount `{spec}`: tmpfs takes no source", "drop source=")
    if d["Type"] == "volume" and d["Source"]:
        check_name(d["Source"])
    return d


def _size(v: str) -> int:
    from rootless.units import parse_size

    try:
        return parse_size(v)
    except ValueError as e:
        raise UsageError(f"invalid tmpfs-size `{v}`: {e}", "for example tmpfs-size=64m")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"use volume name `{name}`: invalid name",
                         "a volume name is [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at least two characters)")
    return name


# --- the volume store ------------------------------------------------------------------------------


class VolumeStore:
    """``data_root/volumes/<name>/_data`` with ``<name>/opts.json`` (labels, created, anonymous)."""

    def __init__(self, data_root: str):
        self.root = os.path.join(data_root, "volumes")

    def dir(self, name: str) -> str:
        return os.path.join(self.root, check_name(name))

    def data(self, name: str) -> str:
        return os.path.join(self.dir(name), "_data")

    def exists(self, name: str) -> bool:
        return os.path.isdir(self.data(name))

    def create(self, name: Optional[str] = None, labels: Optional[Dict[str, str]] = None,
               anonymous: bool = False) -> Tuple[str, bool]:
        """(name, created now)."""
        name = name or os.urandom(32).hex()
        d = self.dir(name)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            return name, False
        os.mkdir(os.path.join(d, "_data"), 0o755)
        meta = {"CreatedAt": timefmt.now_seconds(), "Labels": labels or {}, "Anonymous": anonymous}
        paths.atomic_write(os.path.join(d, "opts.json"), json.dumps(meta).encode(), mode=0o600)
        events.emit(os.path.dirname(self.root), "volume", "create", name, {"driver": "local"})
        return name, True

    def meta(self, name: str) -> Dict[str, Any]:
        try:
            with open(os.path.join(self.dir(name), "opts.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def names(self) -> List[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if NAME_RE.match(n) and self.exists(n))
        except FileNotFoundError:
            return []

    def inspect(self, name: str) -> Dict[str, Any]:
        if not self.exists(name):
            raise NotFound(f"get volume `{name}`: no such volume", "see `rootless volume ls`")
        m = self.meta(name)
        return {"CreatedAt": m.get("CreatedAt", ""), "Driver": "local", "Labels": m.get("Labels") or None,
                "Mountpoint": self.data(name), "Name": name, "Options": None, "Scope": "local"}

    def users(self, data_root: str, name: str) -> List[str]:
        return in_use(data_root).get(name, [])

    def remove(self, name: str, ids=None) -> None:
        d = self.dir(name)
        if not os.path.isdir(d):
            raise NotFound(f"remove volume `{name}`: no such volume", "see `rootless volume ls`")
        _rmtree(d, ids)
        events.emit(os.path.dirname(self.root), "volume", "destroy", name, {"driver": "local"})


def in_use(data_root: str) -> Dict[str, List[str]]:
    """volume name -> ids of the containers that mount it. A running container whose record is
    damaged counts too, by its alive marker (issue 11: else its volume could be removed under it)."""
    from rootless import state as st

    out: Dict[str, List[str]] = {}
    store = st.Store(data_root)
    for rec in store.list():
        for m in rec.get("Mounts") or []:
            if isinstance(m, dict) and m.get("Type") == "volume" and isinstance(m.get("Name"), str):
                out.setdefault(m["Name"], []).append(rec["Id"])
    for cid in store.damaged():
        marker = store.alive_marker(cid)
        for name in (marker or {}).get("Volumes") or []:
            if isinstance(name, str):
                out.setdefault(name, []).append(cid)
    return out


def _rmtree(path: str, ids=None) -> None:
    import shutil

    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    from rootless import idmap
    from rootless.storage.base import remove_tree

    remove_tree(path, ids or idmap.load())


def _mount_entry(kind: str, source: str, dest: str, ro: bool, name: str = "", mode: str = "") -> Dict[str, Any]:
    e: Dict[str, Any] = {"Type": kind}
    if name:
        e["Name"] = name
    e.update({"Source": source, "Destination": dest, "Mode": mode, "RW": not ro, "Propagation": "rprivate"})
    if kind == "volume":
        e["Driver"] = "local"
        e["Propagation"] = ""
    return e


def _check_bind_source(path: str, create: bool, flag: str) -> None:
    if not os.path.lexists(path):
        if not create:
            raise RootlessError(f"mount `{path}`: bind source path does not exist",
                                "create it first (--mount does not create it; -v does)")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise RootlessError(f"create bind source `{path}`: {e.strerror}",
                                "create it yourself, or choose a path you may write")
        return
    if not os.access(path, os.R_OK) or (os.path.isdir(path) and not os.access(path, os.X_OK)):
        raise RootlessError(f"mount `{path}` ({flag}): permission denied: you cannot read it",
                            "an unprivileged user can bind only what it may read; choose another path")


def prepare(config, rec: Dict[str, Any], image_config: Dict[str, Any], layer_dirs: List[str], layer_fmt: str,
            ids=None) -> List[Dict[str, Any]]:
    """docker's ``Mounts`` for this container, creating -v host dirs and named/anonymous volumes
    (seeded from the image's content at their path when new, as docker does)."""
    hc = rec.get("HostConfig") or {}
    vs = VolumeStore(config.data_root)
    out: Dict[str, Dict[str, Any]] = {}
    seeds: List[Tuple[str, str]] = []  # (container path, volume data dir)

    def volume(name: str, dest: str, ro: bool, anonymous: bool, nocopy: bool = False) -> None:
        name, new = vs.create(name or None, anonymous=anonymous)
        out[dest] = _mount_entry("volume", vs.data(name), dest, ro, name=name, mode="z" if not anonymous else "")
        if new and not nocopy:
            seeds.append((dest, vs.data(name)))

    for ref in hc.get("VolumesFrom") or []:
        other_ref, _, mode = ref.partition(":")
        from rootless import state as st

        other = st.Store(config.data_root).resolve(other_ref)
        for m in other.get("Mounts") or []:
            e = dict(m)
            if mode == "ro":
                e["RW"] = False
            out[e["Destination"]] = e
    for dest in sorted(image_config.get("Volumes") or {}):
        if dest not in out:
            volume("", os.path.normpath(dest), False, True)
    for spec in hc.get("Binds") or []:
        v = parse_volume(spec)
        if v["Type"] == "bind":
            _check_bind_source(v["Source"], True, "-v")
            out[v["Target"]] = _mount_entry("bind", os.path.realpath(v["Source"]), v["Target"], v["ReadOnly"])
        else:
            volume(v["Source"], v["Target"], v["ReadOnly"], not v["Source"], v.get("Nocopy", False))
    for m in hc.get("Mounts") or []:
        dest = os.path.normpath(m["Target"])
        if m["Type"] == "bind":
            _check_bind_source(m["Source"], False, "--mount")
            out[dest] = _mount_entry("bind", os.path.realpath(m["Source"]), dest, m["ReadOnly"])
        elif m["Type"] == "volume":
            volume(m["Source"], dest, m["ReadOnly"], not m["Source"])
        else:
            e = _mount_entry("tmpfs", "", dest, m["ReadOnly"])
            e["TmpfsOptions"] = m.get("TmpfsOptions") or {}
            out[dest] = e
    if seeds and layer_dirs:
        seed(layer_dirs, layer_fmt, seeds, ids)
    return [out[k] for k in sorted(out)]


def spec_mounts(mounts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """OCI runtime-spec mounts for docker's ``Mounts`` entries (after the spec's own ones)."""
    out = []
    for m in mounts:
        if m["Type"] == "tmpfs":
            o = ["rw", "nosuid", "nodev"] if m.get("RW", True) else ["ro", "nosuid", "nodev"]
            t = m.get("TmpfsOptions") or {}
            if t.get("SizeBytes"):
                o.append(f"size={int(t['SizeBytes'])}")
            if t.get("Mode"):
                o.append(f"mode={int(t['Mode']):o}")
            out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs", "options": o})
            continue
        o = ["rbind", "rprivate"] + ([] if m.get("RW", True) else ["ro"])
        out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"], "options": o})
    return out


def check_sources(mounts: List[Dict[str, Any]]) -> None:
    """At start: every bind source and volume must still be there (docker fails the start too)."""
    for m in mounts:
        if m["Type"] in ("bind", "volume") and not os.path.exists(m["Source"]):
            what = f"volume `{m.get('Name')}`" if m["Type"] == "volume" else f"bind source `{m['Source']}`"
            raise RootlessError(f"mount {what} on `{m['Destination']}`: it does not exist any more",
                                "create it again, or remove the container")


def anonymous_of(rec: Dict[str, Any], data_root: str) -> List[str]:
    vs = VolumeStore(data_root)
    out = []
    for m in rec.get("Mounts") or []:
        if m.get("Type") == "volume" and m.get("Name") and vs.meta(m["Name"]).get("Anonymous"):
            out.append(m["Name"])
    return out


def remove_anonymous(config, rec: Dict[str, Any], ids=None) -> None:
    """`rm -v` and `--rm`: the container's anonymous volumes go with it (named ones stay)."""
    vs = VolumeStore(config.data_root)
    for name in anonymous_of(rec, config.data_root):
        if vs.users(config.data_root, name):
            continue
        try:
            vs.remove(name, ids)
        except (RootlessError, OSError):
            pass


# --- seeding: copy the image's content at a path into a new volume (in the user namespace) ---------


def seed(layer_dirs: List[str], fmt: str, seeds: List[Tuple[str, str]], ids=None) -> None:
    from rootless import answer, idmap
    from rootless.runtime import run_in_userns

    run_in_userns(_seed_in_userns, list(layer_dirs), fmt, list(seeds), ids=ids or idmap.load(), schema=answer.none)


def _seed_in_userns(layer_dirs: List[str], fmt: str, seeds: List[Tuple[str, str]]) -> None:
    """Root in the user namespace: ownership and modes are copied as the image has them."""
    layers = layer_dirs[-1:] if fmt == "vfs" else layer_dirs
    for dest, data in seeds:
        rel = dest.lstrip("/")
        for layer in layers:
            src = _inside(layer, rel)
            if src is None:
                continue
            if os.path.isdir(src) and is_opaque(src):
                _clear(data)
            if os.path.isdir(src) and not os.path.islink(src):
                st = os.lstat(src)
                _own(data, st)
                _copy_tree(src, data)


def _inside(root: str, rel: str) -> Optional[str]:
    """``root/rel`` without following a symlink on the way (a layer cannot point us elsewhere)."""
    cur = root
    for part in [p for p in rel.split("/") if p and p != "."]:
        if part == "..":
            return None
        cur = os.path.join(cur, part)
        if os.path.islink(cur) or not os.path.lexists(cur):
            return None
    return cur


def _own(path: str, st) -> None:
    try:
        os.lchown(path, st.st_uid, st.st_gid)
    except OSError:
        pass  # an id not mapped (no subuid range): the file stays ours
    import stat

    if not stat.S_ISLNK(st.st_mode):
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode))
        except OSError:
            pass


def _clear(path: str) -> None:
    import shutil

    for n in os.listdir(path):
        p = os.path.join(path, n)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)


def _copy_tree(src: str, dst: str) -> None:
    import shutil
    import stat

    for n in os.listdir(src):
        s, d = os.path.join(src, n), os.path.join(dst, n)
        st = os.lstat(s)
        if is_whiteout(st):
            if os.path.isdir(d) and not os.path.islink(d):
                shutil.rmtree(d, ignore_errors=True)
            elif os.path.lexists(d):
                os.unlink(d)
            continue
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(d) and not (os.path.isdir(d) and not os.path.islink(d)):
                os.unlink(d)
            if not os.path.lexists(d):
                os.mkdir(d, 0o700)
            elif is_opaque(s):
                _clear(d)
            _copy_tree(s, d)
            _own(d, st)
            continue
        if os.path.lexists(d):
            if os.path.isdir(d) and not os.path.islink(d):
                shutil.rmtree(d, ignore_errors=True)
            else:
                os.unlink(d)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(s, d, follow_symlinks=False)
        else:
            continue  # devices, fifos, sockets: not seeded
        _own(d, st)


# --- the facade of `volume create/ls/inspect/rm/prune` (and the Engine API's /volumes) ---------------


@dataclass(frozen=True)
class VolumeSpec:
    """A volume to create (docker's VolumeCreateOptions), checked when made (``VolumeSpec.make``)."""

    name: str = ""                       # empty: a generated one
    driver: str = "local"
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, name: str = "", driver: str = "local", labels: Optional[Mapping[str, str]] = None,
             options: Optional[Mapping[str, str]] = None) -> VolumeSpec:
        if driver != "local":
            raise UsageError(f"use volume driver `{driver}`: not supported", "use the local driver")
        if options:
            raise UsageError("use volume options: not supported by the local driver here", "drop -o")
        return cls(check_name(name) if name else "", driver, dict(labels or {}), dict(options or {}))

    @classmethod
    def from_cli(cls, name: str, driver: str, label_items: Sequence[str], opt_items: Sequence[str]) -> VolumeSpec:
        """From `volume create`'s flags: ``--label KEY=VALUE``, ``-o KEY=VALUE``."""
        return cls.make(name, driver, _pairs(label_items), _pairs(opt_items))


def _pairs(items: Sequence[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def create_volume(config, spec: VolumeSpec) -> Dict[str, Any]:
    """Create the volume (an existing one with that name is kept as it is); its inspect dict."""
    vs = VolumeStore(config.data_root)
    name, _ = vs.create(spec.name or None, labels=dict(spec.labels))
    return vs.inspect(name)


def _volume_filters(used: Dict[str, List[str]]):
    from rootless.engine import filters

    return {
        "dangling": lambda info, v: (info["Name"] not in used) == (v in ("true", "1")),
        "name": lambda info, v: v in info["Name"],
        "label": filters.has_label,
    }


def list_volumes(config, filter_items: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """The inspect dicts of the volumes that pass every ``--filter`` (dangling=, name=, label=)."""
    from rootless.engine import filters

    used = in_use(config.data_root)
    parsed = filters.parse(filter_items, _volume_filters(used),
                           unknown=lambda f, k: UsageError(f"invalid filter `{k}`", "use dangling=, name= or label="))
    vs = VolumeStore(config.data_root)
    return [info for info in (vs.inspect(n) for n in vs.names()) if filters.matches(info, parsed)]


def inspect_volume(config, name: str) -> Dict[str, Any]:
    return VolumeStore(config.data_root).inspect(name)


def remove_volume(config, name: str, force: bool = False) -> None:
    """Remove a volume no container uses (``force`` does not override that, as in docker)."""
    del force
    used = in_use(config.data_root)
    if name in used:
        raise RootlessError(f"remove volume `{name}`: volume is in use by container "
                            f"`{used[name][0][:12]}`", "remove the container first", exit_code=1)
    VolumeStore(config.data_root).remove(name)


def prune_volumes(config, all_volumes: bool = False) -> List[str]:
    """Remove the anonymous volumes (with ``all_volumes``, every volume) no container uses; their
    names. One that cannot be removed is left (and not listed)."""
    vs = VolumeStore(config.data_root)
    used = in_use(config.data_root)
    removed = []
    for name in vs.names():
        if name in used or (not all_volumes and not vs.meta(name).get("Anonymous")):
            continue
        try:
            vs.remove(name)
            removed.append(name)
        except (RootlessError, OSError):
            continue
    return removed
