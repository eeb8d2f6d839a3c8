"""rootless.timefmt: the one place times are written and read (docker's formats)."""

from __future__ import annotations

import re
import time

import pytest

from rootless import logs, state, timefmt
from rootless.engine import containers
from rootless.image import progress

NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")


def test_now_is_rfc3339nano_utc():
    for _ in range(50):
        t = state.now()
        assert NANO.match(t), t
        assert abs(timefmt.parse(t) - time.time()) < 5
    assert timefmt.rfc3339nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert timefmt.rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert timefmt.fixed_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.120000000Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", timefmt.now_seconds())


def test_one_parser_for_every_reader():
    ns = 1_700_000_000_123_456_789
    for text in ("2023-11-14T22:13:20.123456789Z", "2023-11-14T23:13:20.123456789+01:00",
                 "2023-11-14T22:13:20.123456789"):
        assert timefmt.parse_ns(text) == ns == logs.parse_time(text)
        assert progress.parse_time(text) == pytest.approx(ns / 1e9)
        assert containers.parse_time(text) == pytest.approx(ns / 1e9)
    assert containers.parse_time(timefmt.ZERO_TIME) == 0.0 and progress.parse_time("") is None
    for bad in ("yesterday", "2023-13-01T00:00:00Z", "2023-02-30T00:00:00Z", "2023-11-14 22:13:20Z"):
        with pytest.raises(ValueError):
            timefmt.parse_ns(bad)
        assert progress.parse_time(bad) is None and containers.parse_time(bad) == 0.0
