"""The engine: the one way in to containers, for both faces (the CLI and the Engine API).

It returns values and raises errors; it never prints, reads argv or looks at a terminal.
Submodules: lifecycle (create/start/remove), containers (stop/kill/pause/exec/ps rows/inspect),
containerfs + copyhelper (cp/export/diff/commit), stats, monitor + attach (the per-container
monitor process and its client channel), volumes.
"""

from __future__ import annotations

from typing import Any

_LIFECYCLE = frozenset((
    "CreateOptions", "choose_runtime", "create", "effective_command", "finish", "remove", "start_record",
    "teardown_attachments", "_limit_fields", "get_image", "layer_paths", "resolve", "run", "start",
    "gc_auto_removed", "keep_updates", "Started", "RuntimeChoice", "build_spec",
))


def __getattr__(name: str) -> Any:  # lazy: importing a submodule must not load the lifecycle
    if name in _LIFECYCLE:
        from rootless.engine import lifecycle

        return getattr(lifecycle, name)
    raise AttributeError(f"module 'rootless.engine' has no attribute {name!r}")
