"""Tables with wide characters stay aligned, as docker's tabwriter (go-runewidth) keeps them (issue 12)."""

from __future__ import annotations

import pytest

from rootless.cli.tabwriter import width

pytestmark = [pytest.mark.nosubuid, pytest.mark.usefixtures("clean_data_root")]


def test_history_aligns_a_wide_created_by(rl, bb):
    rl.ok("run", "--name", "wide", "--network", "none", bb, "sh", "-c", "echo 日本語 > /x")
    rl.ok("commit", "wide", "wide:1")
    out = rl.ok("history", "--no-trunc", "wide:1").stdout.splitlines()
    header = out[0]
    col = width(header[:header.index("SIZE")])
    assert any("日本語" in ln for ln in out[1:])
    for ln in out[1:]:
        # the SIZE column starts at the same display column on every row
        rest = ln
        cut = 0
        while width(rest[:cut]) < col:
            cut += 1
        assert width(rest[:cut]) == col, ln
        assert rest[cut - 1] == " " and rest[cut] != " ", ln
