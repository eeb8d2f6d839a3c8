"""rootless container: `container ls|inspect|start|stop|...` (the top-level commands) and `prune`."""

from __future__ import annotations

import argparse
import sys

from rootless.errors import UsageError
from rootless.report import Reporter

ALIASES = {"ls": "ps", "list": "ps", "ps": "ps", "remove": "rm", "rm": "rm"}
SUBS = ("attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill", "logs", "pause", "port",
        "rename", "restart", "run", "start", "stats", "stop", "top", "unpause", "update", "wait")


def add_arguments(p) -> None:
    p.add_argument("subcommand", metavar="COMMAND",
                   help="ls, inspect, prune, start, stop, rm, logs, exec, ... (the top-level commands)")
    p.add_argument("rest", nargs=argparse.REMAINDER)


def prune(config, force: bool, filters, reporter: Reporter) -> int:
    import time

    from rootless import engine
    from rootless.cli.objects import print_deleted
    from rootless.cli.output import confirm
    from rootless.cli.when import parse_when
    from rootless.units import human_size

    if not confirm("WARNING! This will remove all stopped containers.", force):
        return 0
    until = None
    for f in filters:
        k, _, v = f.partition("=")
        if k != "until":
            raise UsageError(f"invalid filter `{k}`", "container prune takes until=")
        until = parse_when(v, time.time(), "--filter until") / 1e9
    removed, reclaimed = engine.prune(config, until, reporter=reporter)
    print_deleted("Containers", removed)
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


def main(args, ctx) -> int:
    from rootless import cli

    sub = args.subcommand
    if sub == "prune":
        p = cli.ArgParser(prog="rootless container prune", description="Remove all stopped containers")
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
        p.add_argument("--filter", action="append", default=[], help="Provide filter values (until=<timestamp>)")
        ns = p.parse_args(args.rest)
        return prune(ctx.config, ns.force, ns.filter, reporter=ctx)
    name = ALIASES.get(sub, sub if sub in SUBS else None)
    if name is None or name not in cli.COMMANDS:
        raise UsageError(f"unknown command: container {sub}", "see 'rootless container --help'")
    mod, help_text = cli.COMMANDS[name]
    built = cli.build_parser(name, mod, help_text)
    if built is None:
        raise UsageError(f"container {sub}: not built yet", "see 'rootless --help' for the commands")
    module, parser = built
    parser.prog = f"rootless container {sub}"
    ns = parser.parse_args(args.rest)
    return int(module.main(ns, ctx) or 0)
