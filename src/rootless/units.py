"""docker's go-units: the sizes the CLI prints (4.26MB) and reads (512m), durations (About a minute)."""

from __future__ import annotations

import re

_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, ``%.{precision}g``: 4.26MB, 1.24kB, 0B."""
    i = 0
    size = float(size)
    while size >= 1000.0 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_UNITS[i]}"


_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# go-units RAMInBytes: "32m", "32MB", "1.5g", "512 KiB", "1024"
_RAM_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """go-units RAMInBytes (what docker's --memory, --shm-size, log max-size take): binary
    multiples, case-insensitive, an optional ``b``/``ib`` suffix. ValueError when it is not one."""
    m = _RAM_RE.match(str(text).strip())
    if not m:
        raise ValueError(f"`{text}` is not a size (examples: 64m, 1g, 512k)")
    from decimal import Decimal  # exact: 1.5g is 1610612736, not a float's guess

    return int(Decimal(m.group(1)) * _RAM_UNITS[m.group(2).lower()])


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (``docker images`` CREATED, without " ago")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"
