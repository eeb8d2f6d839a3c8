"""The uid/gid ranges a user may map, from /etc/subuid and /etc/subgid (shadow-utils format)."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from rootless.value import Value


class IdRange(Value):
    """``count`` ids starting at host id ``start``."""

    __slots__ = ("start", "count")
    start: int
    count: int

    def __init__(self, start: int, count: int) -> None:
        self.start = start
        self.count = count


class IdMapping(Value):
    """One line of a uid_map/gid_map: container id, host id, count."""

    __slots__ = ("container", "host", "count")
    container: int
    host: int
    count: int

    def __init__(self, container: int, host: int, count: int) -> None:
        self.container = container
        self.host = host
        self.count = count


def read_ranges(user: str, uid: int, path: str) -> List[IdRange]:
    """The ranges ``path`` grants to ``user`` (by name or by numeric uid), in file order."""
    out: List[IdRange] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            continue
        who, start, count = parts
        if who not in (user, str(uid)):
            continue
        try:
            r = IdRange(int(start), int(count))
        except ValueError:
            continue
        if r.count > 0 and r.start >= 0:
            out.append(r)
    return out


def current_user() -> Tuple[str, int, int]:
    import pwd

    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return name, uid, os.getgid()


def mappings(own_id: int, ranges: List[IdRange]) -> List[IdMapping]:
    """Container 0 -> the user; container 1.. -> the subordinate ranges, in order.

    This is podman's and docker's rootless layout: container uid N (N >= 1) is
    subuid_start + N - 1 for the first range, then continues into the next ones.
    """
    maps = [IdMapping(0, own_id, 1)]
    next_id = 1
    for r in ranges:
        maps.append(IdMapping(next_id, r.start, r.count))
        next_id += r.count
    return maps


class UserIds(Value):
    __slots__ = ("user", "uid", "gid", "subuids", "subgids")
    user: str
    uid: int
    gid: int
    subuids: List[IdRange]
    subgids: List[IdRange]

    def __init__(self, user: str, uid: int, gid: int, subuids: List[IdRange], subgids: List[IdRange]) -> None:
        self.user = user
        self.uid = uid
        self.gid = gid
        self.subuids = subuids
        self.subgids = subgids

    @property
    def has_ranges(self) -> bool:
        return bool(self.subuids) and bool(self.subgids)

    def uid_mappings(self) -> List[IdMapping]:
        return mappings(self.uid, self.subuids if self.has_ranges else [])

    def gid_mappings(self) -> List[IdMapping]:
        return mappings(self.gid, self.subgids if self.has_ranges else [])


def load(subuid_path: str = "/etc/subuid", subgid_path: str = "/etc/subgid", user: Optional[str] = None) -> UserIds:
    name, uid, gid = current_user()
    if user is not None:
        name = user
    return UserIds(name, uid, gid, read_ranges(name, uid, subuid_path), read_ranges(name, uid, subgid_path))


def max_id(maps: List[IdMapping]) -> int:
    return max(m.container + m.count for m in maps) - 1


def to_host(maps: List[IdMapping], cid: int) -> Optional[int]:
    for m in maps:
        if m.container <= cid < m.container + m.count:
            return m.host + (cid - m.container)
    return None
