"""Docker's ``--filter KEY=VALUE`` lists for the object facades (volumes, networks): checked once,
before anything is listed, then matched against each object's inspect dict."""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

Info = Mapping[str, Any]
Test = Callable[[Info, str], bool]


def has_label(info: Info, want: str) -> bool:
    """``label=KEY`` or ``label=KEY=VALUE``."""
    k, sep, v = want.partition("=")
    labels = info.get("Labels") or {}
    return k in labels and (not sep or labels[k] == v)


def parse(items: Sequence[str], tests: Mapping[str, Test], unknown: Callable[[str, str], Exception],
          no_value: Optional[Callable[[str], Exception]] = None) -> List[Tuple[Test, str]]:
    """Each ``KEY=VALUE`` as (its test, VALUE); a key without a test raises ``unknown(item, key)``,
    an item without ``=`` raises ``no_value(item)`` when given (else its value is empty)."""
    out: List[Tuple[Test, str]] = []
    for f in items:
        key, sep, val = f.partition("=")
        if not sep and no_value is not None:
            raise no_value(f)
        test = tests.get(key)
        if test is None:
            raise unknown(f, key)
        out.append((test, val))
    return out


def matches(info: Info, parsed: Sequence[Tuple[Test, str]]) -> bool:
    return all(test(info, val) for test, val in parsed)

