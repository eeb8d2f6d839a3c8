"""What the commands over several objects share: the one per-object loop (``each``: stop, kill, rm,
pause, unpause, restart, wait, start, update, and `network`/`volume` rm), inspect's loop and its
JSON / --format output, and for `rootless network` and `rootless volume` a SUBCOMMAND + rest
command line, the ls flags and output (filters, --quiet, --format), prune's prompt and output.

Each command keeps its own messages; the filters are matched by the engine (engine/filters.py).
This module only runs the loops, so the outputs
stay Docker's: each success on its own line as it happens, each failure as `error: ...` (and
`hint: ...`) on stderr, the others still done, and status 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional

from rootless.errors import RootlessError, UsageError

Info = Dict[str, Any]


def add_arguments(p, subcommands: str) -> None:
    p.add_argument("subcommand", metavar="COMMAND", help=subcommands)
    p.add_argument("rest", nargs=argparse.REMAINDER)


def parser(prog: str):
    from rootless import cli

    return cli.ArgParser(prog=prog)


def add_ls_flags(p, quiet_help: str, filter_help: str) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    p.add_argument("-f", "--filter", action="append", default=[], help=filter_help)
    p.add_argument("--format", default=None, help="Format output using a Go template")


def add_inspect_flags(p) -> None:
    p.add_argument("-f", "--format", default=None, help="Format output using a Go template")
    p.add_argument("names", nargs="+")


# --- ls ----------------------------------------------------------------------------------------------


def labels_text(info: Info) -> str:
    """The LABELS column: ``k=v`` pairs, sorted, comma-separated."""
    return ",".join(f"{k}={v}" for k, v in sorted((info.get("Labels") or {}).items()))


def print_rows(rows: List[Info], ns, quiet_key: str, default_format: str, headers: Dict[str, str]) -> int:
    """``ls`` output: one ``row[quiet_key]`` a line with --quiet, else the --format (or default) table."""
    if ns.quiet:
        sys.stdout.write("".join(r[quiet_key] + "\n" for r in rows))
        return 0
    from rootless.cli import gotemplate

    sys.stdout.write(gotemplate.format_rows(ns.format or default_format, rows, headers))
    return 0


# --- inspect, rm, prune ----------------------------------------------------------------------------


def each(refs: Iterable[str], fn: Callable[[str], Any],
         show: Optional[Callable[[str, Any], Optional[str]]] = None, hints: bool = True) -> int:
    """The per-object loop: ``fn(ref)`` for every ref, in order. On success the line
    ``show(ref, result)`` is printed (default: the ref as given, as docker's stop/kill/rm/... do;
    None prints nothing); a RootlessError is rendered (without its hint when ``hints`` is False) and
    the loop goes on. Returns docker's exit status: 1 if any failed, else 0."""
    from rootless.cli import render_error

    status = 0
    for ref in refs:
        try:
            result = fn(ref)
        except RootlessError as e:
            render_error(e if hints else RootlessError(e.message, None))
            status = 1
            continue
        line = ref if show is None else show(ref, result)
        if line is not None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return status


def render_inspect(items: List[Any], fmt: str) -> str:
    """inspect's output: a JSON array of ``items`` (4-space indent, as docker), or each item through
    the Go template ``fmt`` (``json`` is ``{{json .}}``) on a line of its own."""
    if not fmt:
        return json.dumps(items, indent=4, ensure_ascii=False) + "\n"
    from rootless.cli import gotemplate

    if fmt == "json":
        fmt = "{{json .}}"
    try:
        return "".join(gotemplate.render(fmt, it) + "\n" for it in items)
    except Exception as e:  # noqa: BLE001 - a template error is the user's
        raise UsageError(f"parse --format `{fmt}`: {e}", "see https://docs.docker.com/config/formatting/")


def inspect_each(names: Iterable[str], get: Callable[[str], Info], fmt: Optional[str]) -> int:
    """``get(name)`` for each name (it raises for a missing one: the error is shown without its hint,
    as docker does, and the status is 1); the found ones rendered as JSON or with ``fmt``."""
    items: List[Info] = []
    status = each(names, lambda name: items.append(get(name)), show=lambda name, _: None, hints=False)
    if items or not fmt:
        sys.stdout.write(render_inspect(items, fmt or ""))
    return status


def remove_each(names: Iterable[str], remove: Callable[[str], Optional[str]]) -> int:
    """``remove(name)`` for each name, printing what it returns (None: nothing to print); an error is
    shown and the others are still removed (status 1)."""
    return each(names, remove, show=lambda name, line: line)


def print_deleted(title: str, removed: List[str]) -> None:
    """``Deleted Networks:`` (or Volumes) and one name a line, after a prune that removed any."""
    if removed:
        sys.stdout.write(f"Deleted {title}:\n" + "".join(n + "\n" for n in removed) + "\n")
