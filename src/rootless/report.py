"""Warnings for the user, passed down explicitly: the engine calls ``reporter.warn(message, hint)``
and the face renders them (the CLI as ``warning: ...``/``hint: ...`` lines on stderr; the monitor in
its monitor.log; an API server in its response). Never a module global: a teardown run from
`rm -f`, the monitor or a server reaches whichever face started it.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Tuple

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python 3.7
    Protocol = object  # type: ignore[assignment,misc]


class Reporter(Protocol):
    def warn(self, message: str, hint: Optional[str] = None) -> None: ...


def render(message: str, hint: Optional[str] = None) -> str:
    """The CLI's lines for a warning (the shape of its error lines)."""
    return f"warning: {message}\n" + (f"hint: {hint}\n" if hint else "")


class StreamReporter:
    """Writes each warning to ``stream`` (sys.stderr at the time of the warning when None)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream

    def warn(self, message: str, hint: Optional[str] = None) -> None:
        out = self.stream if self.stream is not None else sys.stderr
        try:
            out.write(render(message, hint))
            out.flush()
        except (OSError, ValueError):  # a closed stream must not turn a warning into a failure
            pass


class Collector:
    """Keeps the warnings (an API response, a test)."""

    def __init__(self) -> None:
        self.warnings: List[Tuple[str, Optional[str]]] = []

    def warn(self, message: str, hint: Optional[str] = None) -> None:
        self.warnings.append((message, hint))


STDERR = StreamReporter()
