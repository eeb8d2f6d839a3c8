"""The time flags of the CLI (`logs --since/--until`, `container prune --filter until=`, ...): a Go
duration (that long ago), an RFC 3339 time, a date, or unix seconds, as the docker CLI takes them."""

from __future__ import annotations

import re

from rootless.errors import UsageError

_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_when(text: str, now: float, flag: str) -> int:
    """A Go duration (10m, 1h30m: that long before ``now``), an RFC 3339 time, a date, or unix
    seconds -> ns since the epoch (0 for an empty text); UsageError naming ``flag`` otherwise."""
    from rootless.logs import parse_time

    t = text.strip()
    if not t:
        return 0
    if _DUR.sub("", t) == "" and _DUR.search(t):
        secs = sum(float(n) * _UNIT[u] for n, u in _DUR.findall(t))
        return int((now - secs) * 1e9)
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return int(float(t) * 1e9)
    try:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", t):
            return parse_time(t + "T00:00:00Z")
        if "T" in t and not (t.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", t)):
            return parse_time(t + "Z")
        return parse_time(t)
    except (ValueError, IndexError):
        raise UsageError(f"invalid value for {flag} `{text}`",
                         "use a duration such as 10m or 1h30m, an RFC 3339 time such as 2024-05-01T10:00:00Z, "
                         "or unix seconds")
