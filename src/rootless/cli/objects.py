"""What `rootless network` and `rootless volume` share: a SUBCOMMAND + rest command line, the ls
flags and output (filters, --quiet, --format), inspect, rm and prune, each object by name.

Each command keeps its own messages; the filters are matched by the engine (engine/filters.py);
this module only runs the loops, so the outputs of both stay Docker's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional

from rootless.errors import RootlessError

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


def inspect_each(names: Iterable[str], get: Callable[[str], Info], fmt: Optional[str]) -> int:
    """``get(name)`` for each name (it raises for a missing one: the error is shown without its hint,
    as docker does, and the status is 1); the found ones rendered as JSON or with ``fmt``."""
    from rootless.cli import render_error
    from rootless.commands.inspect import render

    items, status = [], 0
    for name in names:
        try:
            items.append(get(name))
        except RootlessError as e:
            render_error(RootlessError(e.message, None))
            status = 1
    sys.stdout.write(render(items, fmt or ""))
    return status


def remove_each(names: Iterable[str], remove: Callable[[str], Optional[str]]) -> int:
    """``remove(name)`` for each name, printing what it returns (None: nothing to print); an error is
    shown and the others are still removed (status 1)."""
    from rootless.cli import render_error

    status = 0
    for name in names:
        try:
            line = remove(name)
        except RootlessError as e:
            render_error(e)
            status = 1
            continue
        if line is not None:
            sys.stdout.write(line + "\n")
    return status


def print_deleted(title: str, removed: List[str]) -> None:
    """``Deleted Networks:`` (or Volumes) and one name a line, after a prune that removed any."""
    if removed:
        sys.stdout.write(f"Deleted {title}:\n" + "".join(n + "\n" for n in removed) + "\n")
