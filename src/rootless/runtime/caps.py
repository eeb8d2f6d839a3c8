"""Capability names (linux/capability.h) and applying process.capabilities of a spec."""

from __future__ import annotations

import errno
from typing import Dict, Iterable, List, Optional

from rootless.errors import RuntimeSetupError
from rootless.linux import syscalls as sc

NAMES: List[str] = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip
NUMBERS: Dict[str, int] = {n: i for i, n in enumerate(NAMES)}
CAP_SETPCAP = NUMBERS["CAP_SETPCAP"]


def mask(names: Optional[Iterable[str]], what: str, last: int) -> int:
    """A bit mask of ``names``; caps this kernel does not know are skipped (runc does the same)."""
    out = 0
    for n in names or []:
        key = n.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        num = NUMBERS.get(key)
        if num is None:
            raise RuntimeSetupError(f"set capabilities: unknown capability `{n}` in process.capabilities.{what}",
                                    "use names such as CAP_NET_ADMIN (see capabilities(7))")
        if num <= last:
            out |= 1 << num
    return out


def drop_bounding(keep: int, last: int) -> None:
    """PR_CAPBSET_DROP every capability not in ``keep`` (needs CAP_SETPCAP, so do it first)."""
    for cap in range(last + 1):
        if not keep >> cap & 1:
            try:
                sc.capbset_drop(cap)
            except OSError as e:
                raise RuntimeSetupError(f"drop capability `{NAMES[cap] if cap < len(NAMES) else cap}` from the bounding set: {e.strerror}")


def apply_sets(effective: int, permitted: int, inheritable: int, ambient: int, last: int) -> None:
    try:
        sc.capset(effective, permitted, inheritable)
    except OSError as e:
        raise RuntimeSetupError(f"set capabilities: {e.strerror}",
                                "effective and inheritable capabilities must be within the permitted and bounding sets")
    try:
        sc.cap_ambient_clear_all()
    except OSError:
        pass
    for cap in range(last + 1):
        if ambient >> cap & 1:
            try:
                sc.cap_ambient_raise(cap)
            except OSError as e:
                # Not permitted+inheritable (crun's own `spec --rootless` asks for that): runc
                # and crun go on without it, so do we.
                if e.errno not in (errno.EPERM, errno.EINVAL):
                    raise RuntimeSetupError(f"raise ambient capability `{NAMES[cap]}`: {e.strerror}")
