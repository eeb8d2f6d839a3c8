"""Times as docker writes and reads them, one place for all (no datetime import: start-up time).

- ``now()``/``rfc3339nano(ns)``: Go's time.RFC3339Nano in UTC, trailing zeros of the fraction
  trimmed (``2026-12-02T15:09:19.123456789Z``): how docker's records and its API give every time
  (Created, StartedAt, FinishedAt, a volume's CreatedAt, a network's Created, the json-file log).
- ``now_seconds()``: RFC 3339 in whole seconds (``2026-12-02T15:09:19Z``): a volume's CreatedAt, as
  docker's local volume driver formats it (time.RFC3339).
- ``fixed_nano(ns)``: RFC3339NanoFixed, always nine digits: ``docker logs -t``.
- ``parse_ns(text)``/``parse(text)``: any RFC 3339 time (fraction and offset optional; no offset
  is UTC) to ns/seconds since the epoch.
- ``parse_timestamp_ns(text)``: a ``--since``/``--until`` value (RFC 3339, Unix time or a duration
  such as ``10m``), as docker reads it; ``parse_duration_ns`` is Go's time.ParseDuration.
"""

from __future__ import annotations

import re
import time
from typing import Optional

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, docker's "never"
_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?$")


def rfc3339nano(ns: int) -> str:
    """UTC time with nanoseconds, as Go's time.RFC3339Nano prints it (trailing zeros trimmed)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    f = f"{frac:09d}".rstrip("0")
    return f"{base}.{f}Z" if f else f"{base}Z"


def now() -> str:
    """The current time, as docker records it (RFC3339Nano, UTC)."""
    return rfc3339nano(time.time_ns())


def now_seconds() -> str:
    """The current time in whole seconds (Go's time.RFC3339, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fixed_nano(ns: int) -> str:
    """RFC3339Nano with all nine digits (``docker logs -t``)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_ns(text: str) -> int:
    """RFC 3339 (nanoseconds and an offset allowed; none is UTC) -> ns since the epoch; ValueError."""
    import calendar

    m = _RE.match(text.strip())
    if not m:
        raise ValueError(f"`{text}` is not an RFC 3339 time")
    y, mo, d, h, mi, s = (int(x) for x in m.group(1, 2, 3, 4, 5, 6))
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and s < 61):
        raise ValueError(f"`{text}` is not an RFC 3339 time")
    tz = m.group(8) or "Z"
    off = 0
    if tz not in ("Z", "z"):
        off = (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - off
    return secs * 1_000_000_000 + int(((m.group(7) or "") + "000000000")[:9])


def parse(text: str) -> Optional[float]:
    """RFC 3339 -> seconds since the epoch; None when empty, the zero time, or not a time."""
    if not text or text.startswith("0001-"):
        return None
    try:
        return parse_ns(text) / 1e9
    except ValueError:
        return None


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}


def parse_duration_ns(text: str) -> int:
    """Go's time.ParseDuration (``10m``, ``1h30m``, ``1.5s``, ``-2h``) -> ns; ValueError."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-") if s[:1] in "+-" else s
    if body == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"`{text}` is not a duration")
    return sign * int(total)


def parse_timestamp_ns(text: str, now_ns: Optional[int] = None) -> int:
    """A ``--since``/``--until`` value, as docker's timetypes.GetTimestamp reads it -> ns since the epoch.

    Accepts a Unix time (``1700000000``, ``1700000000.5``), a duration before now (``10m``, ``1h30m``),
    an RFC 3339 time (offset optional: none is UTC), or a date (``2026-12-02``). ValueError otherwise.
    """
    s = text.strip()
    if re.fullmatch(r"\d+(\.\d{1,9})?", s):
        whole, _, frac = s.partition(".")
        return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    try:
        d = parse_duration_ns(s)
    except ValueError:
        pass
    else:
        return (time.time_ns() if now_ns is None else now_ns) - d
    if re.fullmatch(r"\d{4}-\d\d-\d\d", s):
        s += "T00:00:00Z"
    elif re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d", s):
        s += ":00"
    try:
        return parse_ns(s)
    except ValueError:
        raise ValueError(f"`{text}` is not a time: give an RFC 3339 time, a Unix timestamp or a duration "
                         "such as 10m") from None
