"""rootless.cli.tabwriter: docker's table writer (Go's elastic tabstops measured with go-runewidth)."""

from __future__ import annotations

from rootless.cli import gotemplate
from rootless.cli.tabwriter import table, tabwrite, width


def test_wide_characters_take_two_columns():
    assert width("abc") == 3 and width("日本") == 4 and width("e\u0301") == 1
    out = table([["NAME", "SIZE"], ["日本語", "1B"], ["abc", "22B"]])
    assert out == "NAME      SIZE\n日本語    1B\nabc       22B\n"
    lines = out.splitlines()
    assert len({width(ln[:ln.rindex("B") - 1].rstrip("0123456789")) for ln in lines[1:]}) == 1


def test_one_writer_for_tables_and_templates():
    rows = [{"A": "日本", "B": "x"}, {"A": "abcdefghijklm", "B": "y"}]
    via_template = gotemplate.format_rows("table {{.A}}\t{{.B}}", rows)
    assert via_template == table([["A", "B"], ["日本", "x"], ["abcdefghijklm", "y"]])
    assert tabwrite("a\tb\nccc\td", 1, 1) == "a   b\nccc d"
    assert table([]) == ""
