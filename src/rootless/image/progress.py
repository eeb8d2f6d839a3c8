"""Pull/push progress as docker shows it, plus docker's size and duration formats (go-units).

On a terminal each layer has its own line, redrawn in place (``a3ed95caeb02: Downloading [==>  ]
1.2MB/3.4MB``); otherwise each status is printed once as a plain line; quiet prints nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Dict, List, Optional, TextIO

from rootless.timefmt import parse as parse_time
from rootless.units import human_duration, human_size  # noqa: F401  (used here and by importers)


def since(text: str, now: Optional[float] = None) -> str:
    t = parse_time(text)
    if t is None:
        return "N/A"
    return human_duration((now or time.time()) - t) + " ago"


def bar(current: int, total: int, width: int = 50) -> str:
    if total <= 0:
        return ""
    n = int(width * min(current, total) / total)
    arrow = ">" if n < width else ""
    if n >= width:
        n = width
    return "[" + "=" * n + arrow + " " * (width - n - len(arrow)) + "]"


class Progress:
    """Per-layer status lines; thread-safe (layers download in parallel)."""

    def __init__(self, out: Optional[TextIO] = None, quiet: bool = False, tty: Optional[bool] = None):
        self.out = out if out is not None else sys.stdout
        self.quiet = quiet
        if tty is None:
            try:
                tty = self.out.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = bool(tty)
        self._rows: List[str] = []
        self._text: Dict[str, str] = {}
        self._last: Dict[str, str] = {}
        self._last_draw: Dict[str, float] = {}
        self._lock = threading.Lock()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()
            if self.tty:
                # rows above this line are now fixed
                self._rows = []
                self._text = {}

    def layer(self, ident: str, status: str, current: int = -1, total: int = -1) -> None:
        """``ident``: the 12-hex short id. ``current``/``total``: bytes, for a progress bar."""
        if self.quiet:
            return
        with self._lock:
            if not self.tty:
                if current >= 0:
                    return  # no byte counts in plain mode, as docker's non-tty output
                if self._last.get(ident) == status:
                    return
                self._last[ident] = status
                self.out.write(f"{ident}: {status}\n")
                self.out.flush()
                return
            text = f"{ident}: {status}"
            if current >= 0:
                now = time.monotonic()
                if now - self._last_draw.get(ident, 0.0) < 0.1 and current < total:
                    return
                self._last_draw[ident] = now
                b = bar(current, total)
                text += f" {b} {human_size(current)}/{human_size(total)}" if total > 0 else f" {human_size(current)}"
            if ident not in self._text:
                self._rows.append(ident)
                self._text[ident] = text
                self.out.write(text + "\n")
            else:
                self._text[ident] = text
                up = len(self._rows) - self._rows.index(ident)
                self.out.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
            self.out.flush()
