"""``-u name``, ``-u uid:gid``: look users and groups up in the image's /etc/passwd and /etc/group.

The files are read through a ``read_file(path) -> bytes | None`` callable the storage driver gives
(the container's rootfs is usually not mounted on the host: overlay2 mounts it inside the user
namespace), so this module never follows a path on the host.

Docker's rules (moby's ``user.GetExecUser``):
- ``name`` or ``uid``, optionally ``:group`` or ``:gid``;
- a name must exist in /etc/passwd; a number need not (then gid 0, home ``/``);
- without ``:group`` the primary gid is the passwd entry's;
- supplementary groups: every /etc/group entry that lists the user's name, unless a group was given.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from rootless.errors import RootlessError
from rootless.value import Value

ReadFile = Callable[[str], Optional[bytes]]


class PasswdEntry(Value):
    __slots__ = ("name", "uid", "gid", "home")
    name: str
    uid: int
    gid: int
    home: str

    def __init__(self, name: str, uid: int, gid: int, home: str) -> None:
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home


class GroupEntry(Value):
    __slots__ = ("name", "gid", "members")
    name: str
    gid: int
    members: Tuple[str, ...]

    def __init__(self, name: str, gid: int, members: Tuple[str, ...]) -> None:
        self.name = name
        self.gid = gid
        self.members = members


class ExecUser(Value):
    __slots__ = ("uid", "gid", "additional_gids", "home")
    uid: int
    gid: int
    additional_gids: Tuple[int, ...]
    home: str

    def __init__(self, uid: int, gid: int, additional_gids: Tuple[int, ...], home: str) -> None:
        self.uid = uid
        self.gid = gid
        self.additional_gids = additional_gids
        self.home = home


def parse_passwd(text: str) -> List[PasswdEntry]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 7:
            parts += [""] * (7 - len(parts))
        try:
            out.append(PasswdEntry(parts[0], int(parts[2]), int(parts[3]), parts[5] or "/"))
        except ValueError:
            continue
    return out


def parse_group(text: str) -> List[GroupEntry]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 4:
            parts += [""] * (4 - len(parts))
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        members = tuple(m for m in parts[3].split(",") if m)
        out.append(GroupEntry(parts[0], gid, members))
    return out


def _text(read_file: ReadFile, path: str) -> str:
    data = read_file(path)
    return data.decode("utf-8", "replace") if data else ""


def resolve(spec: str, read_file: ReadFile) -> ExecUser:
    """The uid, gid, supplementary gids and home for ``spec`` (``""`` means root)."""
    spec = spec or "0"
    user_part, sep, group_part = spec.partition(":")
    if not user_part:
        user_part = "0"
    passwd = parse_passwd(_text(read_file, "/etc/passwd"))
    entry: Optional[PasswdEntry] = None
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((e for e in passwd if e.uid == uid), None)
    else:
        entry = next((e for e in passwd if e.name == user_part), None)
        if entry is None:
            raise RootlessError(
                f"find user `{user_part}`: no matching entries in the image's /etc/passwd",
                "use a numeric uid (-u 1000 or -u 1000:1000), or a name the image defines",
            )
        uid = entry.uid
    gid = entry.gid if entry else 0
    home = entry.home if entry else "/"
    name = entry.name if entry else None
    groups: Optional[List[GroupEntry]] = None
    if sep and group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            groups = parse_group(_text(read_file, "/etc/group"))
            g = next((x for x in groups if x.name == group_part), None)
            if g is None:
                raise RootlessError(
                    f"find group `{group_part}`: no matching entries in the image's /etc/group",
                    "use a numeric gid (-u USER:1000), or a group the image defines",
                )
            gid = g.gid
    extra: List[int] = []
    if name is not None and not (sep and group_part):
        if groups is None:
            groups = parse_group(_text(read_file, "/etc/group"))
        for g in groups:
            if name in g.members and g.gid != gid and g.gid not in extra:
                extra.append(g.gid)
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise RootlessError(f"use user `{spec}`: uid or gid out of range")
    return ExecUser(uid, gid, tuple(extra), home)
