"""The events feed: what happened to containers, images, volumes and networks, as docker reports it.

There is no daemon that sees every action (each CLI invocation and each container's monitor is its
own process), so events go through a shared journal, ``<data-root>/events/events.jsonl``: one JSON
object per line, in the shape of Docker's ``GET /events`` messages. Readers (``rootless events``,
the Engine API's event stream) read it and follow it.

- ``emit``: one ``os.write`` of a whole line to an ``O_APPEND`` fd, so lines from concurrent writers
  never interleave (the kernel serialises appends to a regular file); no fsync (the feed is a
  record of what happened, not state we depend on: a line lost at a crash is acceptable); a line is
  at most ``MAX_LINE`` bytes. It never raises: a full disk or an unwritable journal must not fail
  the action it reports (at most a warning to ``reporter``).
- Rotation: when the file passes ``ROTATE_BYTES`` the writer that notices renames it to
  ``events.jsonl.1`` (replacing the previous one) under a lock; readers notice the new inode and
  move over. So history is bounded (docker itself keeps only the last 256 events in memory).
- ``read``: past events from the journal (only when ``since`` or ``until`` is given, as docker's
  daemon does), then with ``follow`` new ones as they are appended (polled), up to ``until``.
  Filters as docker's (daemon/events/filter.go): several values of one key OR (labels AND), keys AND.

The journal lives in the private data root (0700); the files are 0600 and a reader refuses a journal
that is not ours. Attributes come from our own records, never from inside a container.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

    from rootless.report import Reporter

FILE = "events.jsonl"
MAX_LINE = 16 << 10  # bytes, newline included; attributes are shortened to fit
MAX_VALUE = 1024  # characters of one attribute value when a line is too long
ROTATE_BYTES = 1 << 20  # about 3000 events per file; two files are kept
POLL = 0.1  # seconds between looks at the journal while following

FILTER_KEYS = ("container", "name", "image", "event", "label", "type", "volume", "network", "scope")
_FUZZY_EVENTS = ("health_status", "exec_create", "exec_start")  # matched as prefixes (docker #25798)


def journal_dir(data_root: str) -> str:
    return os.path.join(data_root, "events")


def journal_path(data_root: str) -> str:
    return os.path.join(journal_dir(data_root), FILE)


def _data_root(config: Any) -> str:
    return config if isinstance(config, str) else config.data_root


# ---------------------------------------------------------------- writing

def message(type: str, action: str, actor_id: str, attributes: Optional[Mapping[str, Any]] = None,
            scope: str = "local", time_ns: Optional[int] = None) -> Dict[str, Any]:
    """Docker's events.Message as JSON, keys in its order; ``status``/``id``/``from`` (the fields
    before API 1.22, which Compose v1 reads) for containers and images, as dockerd fills them."""
    ns = time.time_ns() if time_ns is None else time_ns
    attrs = {str(k): "" if v is None else str(v) for k, v in sorted((attributes or {}).items())}
    msg: Dict[str, Any] = {}
    if type in ("container", "image"):
        msg["status"] = action
        msg["id"] = actor_id
        if type == "container" and attrs.get("image"):
            msg["from"] = attrs["image"]
    msg.update(Type=type, Action=action, Actor={"ID": actor_id, "Attributes": attrs}, scope=scope,
               time=ns // 1_000_000_000, timeNano=ns)
    return msg


def encode(msg: Dict[str, Any]) -> Optional[bytes]:
    """One journal line (at most MAX_LINE bytes), shortening attribute values if needed; None if it cannot fit."""
    line = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
    if len(line) <= MAX_LINE:
        return line
    attrs = msg["Actor"]["Attributes"]
    short = {k: v[:MAX_VALUE] for k, v in attrs.items() if len(k) <= 256}
    for keep in (short, {k: short[k] for k in ("name", "image", "exitCode", "signal") if k in short}):
        msg = dict(msg, Actor={"ID": msg["Actor"]["ID"][:MAX_VALUE], "Attributes": keep})
        line = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        if len(line) <= MAX_LINE:
            return line
    return None


def emit(config: Any, type: str, action: str, actor_id: str, attributes: Optional[Mapping[str, Any]] = None,
         scope: str = "local", reporter: Optional[Reporter] = None) -> None:
    """Append one event to the journal of ``config`` (a Config or a data-root path). Never raises."""
    try:
        line = encode(message(type, action, actor_id, attributes, scope))
        if line is not None:
            _append(_data_root(config), line)
    except Exception as e:  # the action it reports has happened: never let its record fail it
        if reporter is not None:
            try:
                why = getattr(e, "strerror", None) or str(e)
                reporter.warn(f"record event `{type} {action}`: {why}",
                              f"check `{journal_dir(_data_root(config))}` (free space, ownership)")
            except Exception:
                pass


def container(config: Any, rec: Any, action: str, reporter: Optional[Reporter] = None, **extra: Any) -> None:
    """A container event: ``rec`` is its record (or its id: the record is read); the attributes are
    docker's: the container's labels, ``image`` (as given at create), ``name``, then ``extra``."""
    try:
        if isinstance(rec, str):
            from rootless import state

            rec = state.Store(_data_root(config)).load(rec)
        cfg = rec.get("Config") or {}
        attrs = dict(cfg.get("Labels") or {})
        attrs.update(image=cfg.get("Image") or "", name=(rec.get("Name") or "").lstrip("/"))
        attrs.update(extra)
        cid = rec["Id"]
    except Exception:  # noqa: BLE001 - a record removed meanwhile: no event rather than a failed action
        return
    emit(config, "container", action, cid, attrs, reporter=reporter)


def image(config: Any, action: str, actor_id: str, name: str, reporter: Optional[Reporter] = None) -> None:
    """An image event as dockerd's LogImageEvent: the actor is an id or a reference, ``name`` a reference."""
    emit(config, "image", action, actor_id, {"name": name}, reporter=reporter)


def image_ref(config: Any, action: str, ref: str, reporter: Optional[Reporter] = None) -> None:
    """pull/push: the actor is the reference as docker prints it (``busybox:latest``), ``name`` its repository."""
    try:
        from rootless.image import reference

        r = reference.parse(ref)
        r = r if r.digest else r.with_default_tag()
        actor, name = reference.familiar_string(str(r)), r.familiar_name
    except Exception:  # noqa: BLE001 - the action worked with it; record what we were given
        actor, name = ref, ref
    image(config, action, actor, name, reporter)


def images(config: Any, action: str, refs: Iterable[str], reporter: Optional[Reporter] = None) -> None:
    """save/load: one event per image of ``refs`` (names or ids) in the store, its id as actor and name."""
    try:
        from rootless.image.store import ImageStore

        store = ImageStore(_data_root(config))
        ids = [getattr(store.lookup(r), "id", "") for r in refs]
    except Exception:  # noqa: BLE001
        return
    for i in dict.fromkeys(i for i in ids if i):
        image(config, action, i, i, reporter)


def _append(data_root: str, line: bytes) -> None:
    path = journal_path(data_root)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        os.makedirs(data_root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(journal_dir(data_root), 0o700)
        except FileExistsError:
            pass
        fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, line)  # one write of the whole line: appends are not interleaved
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size >= ROTATE_BYTES:
        _rotate(data_root, size)


def _rotate(data_root: str, seen: int) -> None:
    """events.jsonl -> events.jsonl.1, by one writer: the others find it already done under the lock."""
    import fcntl

    path = journal_path(data_root)
    lock = os.open(os.path.join(journal_dir(data_root), ".rotate.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return  # another writer is rotating it now
            raise
        try:
            if os.stat(path).st_size < ROTATE_BYTES:
                return  # rotated by someone else since we wrote
        except FileNotFoundError:
            return
        os.rename(path, path + ".1")
    finally:
        os.close(lock)


# ---------------------------------------------------------------- filters

def parse_filters(items: Iterable[str]) -> Dict[str, List[str]]:
    """``--filter key=value`` arguments -> {key: [values]}; an unknown key is an error, as docker's."""
    from rootless.errors import UsageError

    out: Dict[str, List[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"bad format of filter `{item}`: expected key=value",
                             "e.g. --filter type=container --filter event=start")
        check_filter_keys({key: [value]})
        out.setdefault(key, []).append(value)
    return out


def check_filter_keys(filters: Mapping[str, Any]) -> None:
    from rootless.errors import UsageError

    for key in filters:
        if key not in FILTER_KEYS:
            raise UsageError(f"invalid filter `{key}`", "filters: " + ", ".join(FILTER_KEYS))


def _exact(values: Optional[List[str]], *sources: str) -> bool:
    return values is None or any(s in values for s in sources)


def _fuzzy(values: Optional[List[str]], *sources: str) -> bool:
    """docker's FuzzyMatch: a value matches a source equal to it or starting with it."""
    return values is None or any(s and s.startswith(v) for v in values for s in sources)


def _strip_tag(ref: str) -> str:
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    ref = ref.split("@", 1)[0]
    return ref[:colon] if colon > slash and colon != -1 else ref


def matches(msg: Mapping[str, Any], filters: Optional[Mapping[str, List[str]]]) -> bool:
    """Whether ``msg`` passes ``filters`` (as docker's events Filter.Include)."""
    if not filters:
        return True
    f = filters.get
    etype, action = msg.get("Type", ""), msg.get("Action", "")
    actor = msg.get("Actor") or {}
    aid, attrs = actor.get("ID", ""), actor.get("Attributes") or {}
    name = attrs.get("name", "")
    events = f("event")
    if events is not None:
        fuzzy = any(v in _FUZZY_EVENTS for v in events)
        if not (_fuzzy(events, action) if fuzzy else _exact(events, action)):
            return False
    if not (_exact(f("type"), etype) and _exact(f("scope"), msg.get("scope", ""))):
        return False
    for key in ("container", "name"):  # `name` is the same filter as `container` (docker has none)
        if not _fuzzy(f(key), aid, name):
            return False
    if not (_fuzzy(f("volume"), aid, name) and _fuzzy(f("network"), aid, name)):
        return False
    images = f("image")
    if images is not None:
        iname = attrs.get("name" if etype == "image" else "image", "")
        if not _exact(images, aid, iname, _strip_tag(aid), _strip_tag(iname)):
            return False
    for want in f("label") or ():  # every label filter must match (docker's MatchKVList)
        k, sep, v = want.partition("=")
        if k not in attrs or (sep and attrs[k] != v):
            return False
    return True


# ---------------------------------------------------------------- reading

def _open_ours(path: str) -> Optional[int]:
    """A journal file of ours, for reading; None when missing. A planted file is refused."""
    from rootless.errors import RootlessError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RootlessError(f"read events `{path}`: {e.strerror}", "check the data root's permissions") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        os.close(fd)
        raise RootlessError(f"read events `{path}`: not a regular file of yours that only you can write",
                            "remove it; rootless makes a new one")
    return fd


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


class _Lines:
    """Complete lines from an fd as they are appended; a partial last line waits for its end."""

    def __init__(self, fd: int) -> None:
        self.fd, self.rest = fd, b""

    def read(self) -> List[bytes]:
        chunks = [self.rest]
        while True:
            b = os.read(self.fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
        data = b"".join(chunks)
        lines = data.split(b"\n")
        self.rest = lines.pop()
        if len(self.rest) > MAX_LINE:  # no line of ours is this long: skip to the next newline
            self.rest = b"\0"
        return lines

    def close(self) -> None:
        os.close(self.fd)


def _decode(line: bytes) -> Optional[Dict[str, Any]]:
    """A journal line -> message; None for a damaged line (a torn write at a crash, a full disk)."""
    if not line or len(line) > MAX_LINE:
        return None
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(msg, dict) and isinstance(msg.get("timeNano"), int) and isinstance(msg.get("Type"), str)
            and isinstance(msg.get("Action"), str) and isinstance(msg.get("Actor"), dict)):
        return None
    return msg


def read(config: Any, since: Optional[int] = None, until: Optional[int] = None,
         filters: Optional[Mapping[str, List[str]]] = None, follow: bool = False,
         poll: float = POLL) -> Iterator[Dict[str, Any]]:
    """Events as docker's messages: past ones, then (``follow``) new ones until ``until``.

    ``since``/``until`` are ns since the epoch (timefmt.parse_timestamp_ns reads the CLI's forms).
    As dockerd: past events are given only when ``since`` or ``until`` is set; an event is given
    when ``since <= timeNano <= until``. Following stops once the clock passes ``until``; without
    ``until`` it goes on until the caller stops iterating. Damaged lines are skipped.
    """
    if filters:
        check_filter_keys(filters)
    path = journal_path(_data_root(config))

    def wanted(line: bytes) -> Optional[Dict[str, Any]]:
        msg = _decode(line)
        if msg is None:
            return None
        ns = msg["timeNano"]
        if (since is not None and ns < since) or (until is not None and ns > until):
            return None
        return msg if matches(msg, filters) else None

    cur_fd = _open_ours(path)  # the current file first: if it rotates now, it is the one we hold
    cur = _Lines(cur_fd) if cur_fd is not None else None
    try:
        if since is not None or until is not None:
            old_fd = _open_ours(path + ".1")
            if old_fd is not None:
                old = _Lines(old_fd)
                try:
                    a = os.fstat(old_fd)
                    b = os.fstat(cur_fd) if cur_fd is not None else None
                    if b is None or (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):  # else: rotated just now
                        for line in old.read():
                            msg = wanted(line)
                            if msg is not None:
                                yield msg
                finally:
                    old.close()
            if cur is not None:
                for line in cur.read():
                    msg = wanted(line)
                    if msg is not None:
                        yield msg
        elif cur is not None:
            os.lseek(cur.fd, 0, os.SEEK_END)
        if not follow:
            return
        while until is None or time.time_ns() <= until:
            got = False
            if cur is not None:
                for line in cur.read():
                    got = True
                    msg = wanted(line)
                    if msg is not None:
                        yield msg
            if not got:
                if cur is None or not _same_file(cur.fd, path):  # created or rotated: move to the new file
                    fd = _open_ours(path)
                    if fd is not None:
                        if cur is not None:
                            lines = cur.read()  # what was appended just before the rotation
                            mid = _open_ours(path + ".1")
                            if mid is not None:  # rotated twice since we looked: the file between
                                if _same_file(cur.fd, path + ".1"):
                                    os.close(mid)
                                else:
                                    lines += _Lines(mid).read()
                                    os.close(mid)
                            for line in lines:
                                msg = wanted(line)
                                if msg is not None:
                                    yield msg
                            cur.close()
                        cur = _Lines(fd)
                        continue
                time.sleep(poll)
    finally:
        if cur is not None:
            cur.close()
