"""docker's tabwriter, the one used for every table (ps, images, history, system df, top, ...).

docker/cli formats tables with its fork of Go's text/tabwriter (cli/command/formatter/tabwriter),
which measures a cell with go-runewidth (display columns) where Go's counts runes: so a wide
character (CJK, full-width) takes two columns and the columns after it stay aligned on a terminal.
``tabwrite`` is Go's elastic-tabstops algorithm (padchar ' ', no flags) with that width.
"""

from __future__ import annotations

from typing import List, Sequence

MINWIDTH, PADDING = 10, 3  # docker: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)


def width(s: str) -> int:
    """Display columns, as go-runewidth counts them: East Asian wide and full-width runes are two,
    combining marks none."""
    if s.isascii():
        return len(s)
    import unicodedata  # docker's tabwriter counts East Asian wide runes as two columns

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def tabwrite(text: str, minwidth: int = MINWIDTH, padding: int = PADDING) -> str:
    """Go's text/tabwriter (elastic tabstops, padchar ' ', no flags) applied to all of ``text``."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: List[str] = []
    widths: List[int] = []

    def write(l0: int, l1: int) -> None:
        for line in lines[l0:l1]:
            out.append("".join(c + " " * (widths[j] - width(c)) if j < len(widths) else c for j, c in enumerate(line)))

    def block(l0: int, l1: int) -> None:  # Go's Writer.format
        column, this = len(widths), l0
        while this < l1:
            if column >= len(lines[this]) - 1:  # the last cell of a line is not part of a column
                this += 1
                continue
            write(l0, this)
            l0, cw = this, minwidth
            while this < l1 and column < len(lines[this]) - 1:
                cw = max(cw, width(lines[this][column]) + padding)
                this += 1
            widths.append(cw)
            block(l0, this)
            widths.pop()
            l0 = this
        write(l0, l1)

    block(0, len(lines))
    return "\n".join(out)


def table(rows: Sequence[Sequence[str]], minwidth: int = MINWIDTH, padding: int = PADDING) -> str:
    """``rows`` (the header row first) as docker prints a table; every row ends with a newline."""
    if not rows:
        return ""
    return tabwrite("\n".join("\t".join(r) for r in rows), minwidth, padding) + "\n"
