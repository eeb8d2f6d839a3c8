"""The environment flags of run, create and exec: docker's -e KEY=VALUE / -e KEY and --env-file."""

from __future__ import annotations

import os
from typing import List

from rootless.errors import UsageError


def env_file(path: str) -> List[str]:
    """docker's --env-file: KEY=VALUE lines, `#` comments, a bare KEY takes this environment's value."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"read env file `{path}`: {e.strerror}", "check the path given to --env-file")
    out = []
    for line in lines:
        s = line.lstrip()
        if not s or s.startswith("#"):
            continue
        out += env_item(s)
    return out


def env_item(item: str) -> List[str]:
    """One -e: ``KEY=VALUE`` as it is; a bare ``KEY`` takes this environment's value (none if unset)."""
    key, sep, _ = item.partition("=")
    if not key:
        raise UsageError(f"invalid environment variable `{item}`", "use KEY=VALUE or KEY")
    if sep:
        return [item]
    val = os.environ.get(key)
    return [f"{key}={val}"] if val is not None else []
