"""Images through the engine: list, inspect, history, pull, push, tag, remove, prune, save, load.

The one way in to the image store for both faces (the CLI's image commands now, the Engine API's
/images handlers next). Functions take the Config and typed arguments, return values (rows,
Docker's ImageInspect dict, delete items) and raise RootlessError; progress of pull/push goes to
the ``out`` stream the caller hands in. Imports are inside the functions, so importing this
module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from rootless.errors import ImageError, NotFound, RootlessError, UsageError

Filters = Dict[str, List[str]]

LIST_FILTERS = ("dangling", "reference")
PRUNE_FILTERS = ("until", "label")


# --- filters ---------------------------------------------------------------------------------------


def parse_filters(items: Sequence[str], allowed: Tuple[str, ...]) -> Filters:
    """``--filter KEY=VALUE`` strings → {key: [values]}; unknown keys and missing ``=`` are refused."""
    out: Filters = {}
    for it in items:
        key, sep, val = it.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): `{it}`", "for example --filter dangling=true")
        if key not in allowed:
            raise UsageError(f"invalid filter '{key}'", "supported filters: " + ", ".join(allowed))
        out.setdefault(key, []).append(val)
    return out


def _bool_filter(vals: List[str], name: str) -> bool:
    v = vals[-1].lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise UsageError(f"invalid filter '{name}={vals[-1]}'", f"use {name}=true or {name}=false")


def _ref_matches(pattern: str, familiar_repo: str, tag: Optional[str]) -> bool:
    """docker's reference filter: a glob on the familiar name, or on name:tag."""
    import fnmatch

    if fnmatch.fnmatchcase(familiar_repo, pattern):
        return True
    return tag is not None and fnmatch.fnmatchcase(f"{familiar_repo}:{tag}", pattern)


def _split_repo_tag(familiar: str) -> Tuple[str, str]:
    if "@" in familiar:
        return familiar.split("@", 1)[0], "<none>"
    slash = familiar.rfind("/")
    colon = familiar.rfind(":")
    if colon > slash:
        return familiar[:colon], familiar[colon + 1:]
    return familiar, "<none>"


def parse_until(filters: Mapping[str, List[str]]) -> Optional[float]:
    """The ``until`` prune filter (``24h``, seconds since the epoch or an RFC 3339 time) as a time."""
    if "label" in filters:
        raise UsageError("image prune --filter label=...: not supported", "images are pruned by age (until=) only")
    if "until" not in filters:
        return None
    import re
    import time

    v = filters["until"][-1]
    m = re.match(r"^(\d+)([smh])$", v)
    if m:
        return time.time() - int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    from rootless.image.progress import parse_time

    t = parse_time(v) if not v.isdigit() else float(v)
    if t is None:
        raise UsageError(f"invalid filter 'until={v}'", "use a duration like 24h or an RFC 3339 time")
    return t


# --- list, inspect, history ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRow:
    """One line of ``images``: an image under one repository (docker lists an image once per repo)."""

    id: str            # sha256:...
    repository: str    # familiar name, or <none>
    tag: str           # or <none>
    digest: str        # sha256:... of the manifest for this repository, or <none>
    created: str       # RFC 3339, as in the image config
    size: int          # bytes


def _store(config: Any):
    from rootless.image.store import ImageStore

    return ImageStore(config.data_root)


def get(config: Any, name: str):
    """The image named ``name`` (name[:tag], name@digest, id or id prefix); NotFound if none."""
    return _store(config).require(name)


def list_images(config: Any, filters: Optional[Mapping[str, List[str]]] = None,
                repository: Optional[str] = None, all_images: bool = False) -> List[ImageRow]:
    """The rows of ``images``: filters are {dangling: [bool text], reference: [glob]} (see
    parse_filters); ``repository`` is REPOSITORY[:TAG]. There are no intermediate images here, so
    ``all_images`` (docker's ``--all``) changes nothing."""
    del all_images
    filters = filters or {}
    rows: List[ImageRow] = []
    dangling_f = _bool_filter(filters["dangling"], "dangling") if "dangling" in filters else None
    repo_filter = None
    if repository:
        from rootless.image import reference

        r = reference.parse(repository)
        repo_filter = (r.familiar_name, r.tag)
    for img in _store(config).list():
        if dangling_f is not None and img.dangling != dangling_f:
            continue
        digests_by_repo: Dict[str, List[str]] = {}
        for d in img.repo_digests:
            repo, dig = d.split("@", 1)
            digests_by_repo.setdefault(repo, []).append(dig)
        pairs: List[Tuple[str, str]] = [_split_repo_tag(t) for t in img.repo_tags]
        tagged_repos = {p[0] for p in pairs}
        for repo in digests_by_repo:
            if repo not in tagged_repos:
                pairs.append((repo, "<none>"))
        if not pairs:
            pairs = [("<none>", "<none>")]
        for repo, tag in pairs:
            if "reference" in filters:
                if repo == "<none>" or not any(_ref_matches(p, repo, None if tag == "<none>" else tag)
                                               for p in filters["reference"]):
                    continue
            if repo_filter is not None:
                if repo != repo_filter[0] or (repo_filter[1] and tag != repo_filter[1]):
                    continue
            dig = (digests_by_repo.get(repo) or ["<none>"])[0]
            rows.append(ImageRow(img.id, repo, tag, dig, img.created, img.size))
    return rows


_CONFIG_DEFAULTS: Dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def graph_driver(config: Any, img) -> Dict[str, Any]:
    """ImageInspect's GraphDriver: the storage driver and the image's layer directories."""
    try:
        from rootless.storage.layers import LayerStore
        from rootless.storage.select import choose

        c = choose(config)
    except (RootlessError, ImportError):
        return {"Data": None, "Name": config.storage_driver or "overlay2"}
    if c.fmt == "vfs" or not img.chain_ids:
        return {"Data": None, "Name": c.name}
    ls = LayerStore(config.data_root, c.fmt)
    dirs = [ls.path(ch) for ch in img.chain_ids]
    top = dirs[-1]
    base = top.rsplit("/", 1)[0]
    data = {"MergedDir": base + "/merged", "UpperDir": top, "WorkDir": base + "/work"}
    if len(dirs) > 1:
        data = {"LowerDir": ":".join(reversed(dirs[:-1])), **data}
    return {"Data": data, "Name": c.name}


def inspect_image(config: Any, img) -> Dict[str, Any]:
    """Docker's ImageInspect JSON for an image already looked up."""
    cfg = img.config
    c = dict(_CONFIG_DEFAULTS)
    c.update(cfg.get("config") or {})
    d: Dict[str, Any] = {
        "Id": img.id,
        "RepoTags": list(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Parent": "",
        "Comment": str(cfg.get("comment") or ""),
        "Created": img.created or "0001-01-01T00:00:00Z",
        "DockerVersion": str(cfg.get("docker_version") or ""),
        "Author": str(cfg.get("author") or ""),
        "Config": c,
        "Architecture": str(cfg.get("architecture") or ""),
    }
    if cfg.get("variant"):
        d["Variant"] = cfg["variant"]
    d.update({
        "Os": str(cfg.get("os") or ""),
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": graph_driver(config, img),
        "RootFS": {"Type": "layers", "Layers": list(img.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
    return d


def inspect(config: Any, name: str) -> Dict[str, Any]:
    """Docker's ImageInspect JSON for ``name``; NotFound (``No such image: NAME``) if absent."""
    img = _store(config).lookup(name)
    if img is None:
        raise NotFound(f"No such image: {name}")
    return inspect_image(config, img)


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of an image's history (docker's HistoryResponseItem), newest first."""

    id: str            # the image's id on the newest entry, "<missing>" on the others (as docker)
    created: str       # RFC 3339
    created_by: str
    size: int          # bytes of the layer the entry made (0 for an empty layer)
    comment: str


def history(config: Any, name: str) -> List[HistoryEntry]:
    """The image's history, newest first; layer sizes for the entries that made a layer."""
    img = get(config, name)
    hist = list(img.config.get("history") or [])
    if not hist:
        hist = [{"created": img.created, "created_by": ""} for _ in img.layers]
    sizes = [max(layer.uncompressed_size, 0) for layer in img.layers]
    out: List[HistoryEntry] = []
    li = 0
    for h in hist:
        size = 0
        if not h.get("empty_layer"):
            size = sizes[li] if li < len(sizes) else 0
            li += 1
        out.append(HistoryEntry("<missing>", str(h.get("created") or ""), str(h.get("created_by") or ""), size,
                                str(h.get("comment") or "")))
    out.reverse()
    if out:
        e = out[0]
        out[0] = HistoryEntry(img.id, e.created, e.created_by, e.size, e.comment)
    return out


# --- registry: pull, push ----------------------------------------------------------------------------


class _Discard:
    """Where progress goes when the caller gives no stream: nowhere (the engine never prints)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def pull(config: Any, name: str, *, platform: Optional[str] = None, quiet: bool = False,
         out: Optional[IO[str]] = None, all_tags: bool = False) -> str:
    """Pull ``name`` into the store, progress written to ``out`` (none without it); returns the full
    reference pulled."""
    from rootless.image import pull as pull_
    from rootless.image import reference

    if all_tags:
        raise UsageError("pull --all-tags: not supported", "pull each tag by name")
    ref = reference.parse(name).with_default_tag()
    pull_.pull(config, name, platform=platform, quiet=quiet, out=out if out is not None else _Discard())
    from rootless.engine import events

    events.image_ref(config, "pull", name)
    return str(ref)


def push(config: Any, name: str, *, quiet: bool = False, out: Optional[IO[str]] = None,
         all_tags: bool = False) -> str:
    """Push NAME[:TAG] from the store, progress written to ``out`` (none without it); returns the
    manifest digest."""
    from rootless.image import push as push_

    if all_tags:
        raise UsageError("push --all-tags: not supported", "push each tag by name")
    digest = push_.push(config, name, quiet=quiet, out=out if out is not None else _Discard())
    from rootless.engine import events

    events.image_ref(config, "push", name)
    return digest


# --- tag, remove, prune ------------------------------------------------------------------------------


def tag(config: Any, source: str, target: str) -> None:
    """Make ``target`` (NAME[:TAG]) refer to the image ``source`` names."""
    from rootless.image import reference

    store = _store(config)
    img = store.require(source)
    t = reference.parse(target)
    if t.digest:
        raise UsageError(f"tag `{target}`: refusing to create a tag with a digest reference",
                         "a tag is NAME[:TAG]; digests come from the registry")
    store.tag(img.id, str(t.with_default_tag()))
    from rootless.engine import events

    events.image(config, "tag", img.id, reference.familiar_string(str(t.with_default_tag())))


@dataclass(frozen=True)
class Deleted:
    """One item of a removal, docker's ImageDeleteResponseItem: kind "Untagged" or "Deleted"."""

    kind: str
    ref: str   # the familiar reference untagged, or the id deleted


def remove(config: Any, name: str, force: bool = False) -> List[Deleted]:
    """``rmi NAME``: see _remove; an ``untag`` event per tag removed and ``delete`` for the image."""
    from rootless.engine import events

    img_id = getattr(_store(config).lookup(name), "id", "")
    items = _remove(config, name, force)
    for d in items:
        if d.kind == "Untagged" or d.ref == img_id:  # docker: the image id as actor and name
            events.image(config, "untag" if d.kind == "Untagged" else "delete", img_id, img_id)
    return items


def _remove(config: Any, name: str, force: bool = False) -> List[Deleted]:
    """``rmi NAME`` with docker's rules: by reference it untags (the image goes with its last tag);
    by id it untags all and deletes. An image that a container uses, or (by id) one in several
    repositories, is a conflict unless ``force`` (forced, a used image stays, untagged)."""
    from rootless.image import reference

    store = _store(config)
    img = store.lookup(name)
    if img is None:
        raise NotFound(f"No such image: {name}", "list local images with `rootless images`")
    items: List[Deleted] = []
    # by name when the argument names one of the image's tags or digests, else by id (like docker)
    by_ref = None
    s = name.strip()
    if not s.startswith("sha256:"):
        try:
            r = reference.parse(s)
            by_ref = r.digested if r.digest else str(r.with_default_tag())
        except RootlessError:
            by_ref = None
        if by_ref is not None and by_ref not in img.full_tags + img.full_digests:
            by_ref = None
    users = store.in_use_check(img.id)
    if by_ref is not None:
        remaining = [t for t in img.full_tags if t != by_ref]
        if users and not force and not remaining:
            raise ImageError(
                f"conflict: unable to remove repository reference \"{name}\" (must force) - "
                f"container {users[0][:12]} is using its referenced image {img.short_id}",
                "remove the container first (`rootless rm`), or use -f to untag the image anyway")
        store.untag(by_ref)
        items.append(Deleted("Untagged", reference.familiar_string(by_ref)))
        if remaining:
            return items
        # the last tag went: its digest references go too, then the image
        for d in img.full_digests:
            if d != by_ref:
                store.untag(d)
                items.append(Deleted("Untagged", reference.familiar_string(d)))
        if users:
            return items  # forced: the image stays, dangling, for the container that uses it
    else:
        repos = {t.rsplit(":", 1)[0] for t in img.full_tags} | {d.split("@", 1)[0] for d in img.full_digests}
        if len(repos) > 1 and not force:
            raise ImageError(
                f"conflict: unable to delete {img.short_id} (must be forced) - image is referenced in multiple repositories",
                "remove the tags one by one (`rootless rmi NAME:TAG`), or use -f")
        if users and not force:
            raise ImageError(
                f"conflict: unable to delete {img.short_id} (must be forced) - image is being used by container {users[0][:12]}",
                "remove the container first (`rootless rm`), or use -f to untag it anyway")
        for t in img.full_tags + img.full_digests:
            store.untag(t)
            items.append(Deleted("Untagged", reference.familiar_string(t)))
        if users:
            return items
    removed = store.remove_image(img)
    items.append(Deleted("Deleted", img.id))
    items.extend(Deleted("Deleted", c) for c in removed if c != img.id)
    return items


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (docker's ImagesDeleted) and the bytes it gave back."""

    deleted: List[Deleted]
    reclaimed: int


def prune(config: Any, all_images: bool = False, until: Optional[float] = None) -> PruneReport:
    """Remove dangling images (with ``all_images``, every image no container uses) added before
    ``until`` (a time, see parse_until)."""
    from rootless.image import reference

    store = _store(config)
    items: List[Deleted] = []
    reclaimed = 0
    for img in store.list():
        if not all_images and not img.dangling:
            continue
        if store.in_use_check(img.id):
            continue
        if until is not None and img.added > until:
            continue
        for t in img.full_tags + img.full_digests:
            store.untag(t)
            items.append(Deleted("Untagged", reference.familiar_string(t)))
        chains = store.remove_image(img)
        reclaimed += img.size
        items.append(Deleted("Deleted", img.id))
        items.extend(Deleted("Deleted", c) for c in chains if c != img.id)
    return PruneReport(items, reclaimed)


# --- archives: save, load ------------------------------------------------------------------------------


def save(config: Any, names: Sequence[str], path: Optional[str] = None, stream: Optional[IO[bytes]] = None) -> None:
    """A docker-archive of ``names``, written atomically to ``path`` or to the binary ``stream``."""
    from rootless.image import archive

    if path:
        archive.save(config, list(names), path)
    else:
        if stream is None:
            raise UsageError("save: nowhere to write the archive", "give a path or a stream")
        archive.save(config, list(names), None, stdout=stream)
    from rootless.engine import events

    events.images(config, "save", names)


def load(config: Any, path: Optional[str] = None, stream: Optional[IO[bytes]] = None) -> List[str]:
    """Load a docker-archive or OCI layout tarball from ``path`` or the binary ``stream`` (spooled
    to a private file first: tar members are read in any order); returns ``Loaded image: ...``."""
    import os

    from rootless.image import archive

    if path:
        if not os.path.exists(path):
            raise RootlessError(f"load `{path}`: no such file", "check the path given with -i")
        return _loaded(config, archive.load(config, path))
    if stream is None:
        raise UsageError("load: nothing to read the archive from", "give a path or a stream")
    import shutil
    import tempfile

    d = os.path.join(config.data_root, "image", "tmp")
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="load-", suffix=".tar", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(stream, f, 1 << 20)
        return _loaded(config, archive.load(config, tmp))
    finally:
        os.unlink(tmp)


def _loaded(config: Any, lines: List[str]) -> List[str]:
    from rootless.engine import events

    events.images(config, "load", [line.split(": ", 1)[-1] for line in lines])
    return lines


# --- sizes for `system df` -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageUsage:
    """The Images line of ``system df``: counts and bytes, given the ids containers use."""

    total: int
    active: int
    size: int
    reclaimable: int


def usage(config: Any, used_ids: Sequence[str]) -> ImageUsage:
    images = _store(config).list()
    used = set(used_ids)
    return ImageUsage(len(images), sum(1 for i in images if i.id in used), sum(i.size for i in images),
                      sum(i.size for i in images if i.id not in used))
