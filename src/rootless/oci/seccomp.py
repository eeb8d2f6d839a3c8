"""Docker seccomp profiles -> the OCI ``linux.seccomp`` of one container.

A profile (docker's format: ``defaultAction``, ``defaultErrnoRet``, ``architectures`` or
``archMap``, ``syscalls[{names, action, errnoRet, args, includes, excludes}]``) is settled for a
container as moby's ``setupSeccomp`` does it: the architectures of this machine from ``archMap``;
a rule whose ``includes`` are not all met (every listed capability in the bounding set, this
architecture, ``minKernel``), or whose ``excludes`` are (any listed capability, this
architecture), is left out. What remains is the runtime-spec object (no includes/excludes), so
crun or runc as ``default-runtime`` read the same thing our runtime compiles (linux/seccomp.py).

Where a container's profile comes from: ``--security-opt seccomp=unconfined|FILE`` (the file's
JSON is kept in HostConfig.SecurityOpt, as docker keeps it), else the ``seccomp-profile`` key of
the config, else the builtin (Docker's default profile, oci/seccomp_default.py). --privileged
containers run unconfined, as docker's do.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from rootless.errors import RootlessError

BUILTIN = "builtin"
UNCONFINED = "unconfined"
MAX_PROFILE = 1 << 20  # bytes of a profile file

# uname -m -> (the SCMP_ARCH_ of archMap, the Go name that "arches" in includes/excludes use)
_ARCHES = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"),
    "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "arm64": ("SCMP_ARCH_AARCH64", "arm64"),
}


class ProfileError(RootlessError):
    pass


def _bad(where: str, what: str) -> ProfileError:
    return ProfileError(f"read seccomp profile `{where}`: {what}",
                        "give a profile in docker's format (see docker's default.json), or `unconfined`")


def parse(text: str, where: str) -> Dict[str, Any]:
    """A profile's JSON, checked for shape (the compiler checks actions and comparisons)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise _bad(where, f"invalid JSON: {e}")
    if not isinstance(data, dict):
        raise _bad(where, "not a JSON object")
    if not isinstance(data.get("defaultAction"), str):
        raise _bad(where, "`defaultAction` is missing")
    if data.get("architectures") and data.get("archMap"):
        raise _bad(where, "both `architectures` and `archMap` are given; use one")
    calls = data.get("syscalls")
    if calls is not None and not isinstance(calls, list):
        raise _bad(where, "`syscalls` is not a list")
    for i, c in enumerate(calls or []):
        if not isinstance(c, dict):
            raise _bad(where, f"syscalls[{i}] is not an object")
        for k in ("includes", "excludes"):
            if c.get(k) is not None and not isinstance(c.get(k), dict):
                raise _bad(where, f"syscalls[{i}].{k} is not an object")
    return data


def read_file(path: str) -> str:
    """The text of a profile file (what --security-opt seccomp=FILE and seccomp-profile name)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROFILE + 1)
    except OSError as e:
        raise ProfileError(f"read seccomp profile `{path}`: {e.strerror}",
                           "give the path of a JSON profile, `unconfined`, or leave it unset for the builtin one")
    if len(data) > MAX_PROFILE:
        raise _bad(path, f"larger than {MAX_PROFILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(path, "not UTF-8 text")
    parse(text, path)
    return text


def check(text: str, where: str) -> None:
    """Parse and compile ``text`` for this machine with the default capabilities: a bad profile
    is refused when the container is created, not when it starts."""
    from rootless.linux import seccomp as lsec
    from rootless.runtime import DEFAULT_CAPABILITIES

    resolved = resolve(parse(text, where), DEFAULT_CAPABILITIES)
    try:
        lsec.compile_program(resolved)
    except lsec.SeccompError as e:
        raise ProfileError(f"read seccomp profile `{where}`: {e.message.split(': ', 1)[-1]}", e.hint)


def _kernel(release: Optional[str] = None) -> Tuple[int, int]:
    rel = release or os.uname().release
    parts = (rel.split("-")[0].split(".") + ["0", "0"])[:2]
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except ValueError:
        return (0, 0)


def _names(v: Any) -> List[str]:
    return [str(x) for x in v] if isinstance(v, list) else []


def resolve(profile: Dict[str, Any], caps: Iterable[str], machine: Optional[str] = None,
            kernel: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    """The OCI ``linux.seccomp`` for a container with bounding set ``caps`` on ``machine``."""
    machine = machine or os.uname().machine
    scmp_arch, go_arch = _ARCHES.get(machine, ("", machine))
    kern = kernel or _kernel()
    have = {c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper() for c in caps}
    out: Dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = _names(profile.get("architectures"))
    for m in profile.get("archMap") or []:
        if isinstance(m, dict) and m.get("architecture") == scmp_arch:
            arches = [scmp_arch] + _names(m.get("subArchitectures"))
    if arches:
        out["architectures"] = arches
    calls: List[Dict[str, Any]] = []
    for c in profile.get("syscalls") or []:
        inc, exc = c.get("includes") or {}, c.get("excludes") or {}
        if inc.get("arches") and go_arch not in _names(inc.get("arches")):
            continue
        if inc.get("caps") and not all(x in have for x in _names(inc.get("caps"))):
            continue
        if inc.get("minKernel") and kern < _kernel(str(inc["minKernel"])):
            continue
        if go_arch in _names(exc.get("arches")) or any(x in have for x in _names(exc.get("caps"))):
            continue
        names = c.get("names")
        if names is None and c.get("name"):
            names = [c["name"]]
        rule: Dict[str, Any] = {"names": list(names or []), "action": c.get("action")}
        if c.get("errnoRet") is not None:
            rule["errnoRet"] = c["errnoRet"]
        if c.get("args"):
            rule["args"] = [dict(a) for a in c["args"]]
        calls.append(rule)
    out["syscalls"] = calls
    return out


def builtin() -> Dict[str, Any]:
    from rootless.oci import seccomp_default

    return seccomp_default.profile()


def for_container(source: str, caps: Iterable[str], privileged: bool = False) -> Optional[Dict[str, Any]]:
    """``source``: "" or "builtin", "unconfined", or a profile's JSON text. None: no filter."""
    if privileged or source == UNCONFINED:
        return None
    if source in ("", BUILTIN):
        profile = builtin()
    else:
        profile = parse(source, "HostConfig.SecurityOpt")
    return resolve(profile, caps)


def security_opt(text: str) -> str:
    """``--security-opt seccomp=VALUE`` -> what HostConfig.SecurityOpt keeps after ``seccomp=``:
    ``unconfined``, ``builtin``, or the file's JSON made compact (docker's CLI does the same)."""
    if text in (UNCONFINED, BUILTIN):
        return text
    raw = read_file(text)
    check(raw, text)
    return json.dumps(json.loads(raw), separators=(",", ":"))


def from_config(value: str) -> str:
    """The config's ``seccomp-profile`` -> a source for ``for_container`` (the file read now)."""
    if value in ("", BUILTIN, UNCONFINED):
        return value
    return read_file(value)
