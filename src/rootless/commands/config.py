"""rootless config: check daemon.toml, show the effective values, import a daemon.json."""

from __future__ import annotations

import json
import os
import sys

from rootless.errors import ConfigError, UsageError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="COMMAND")
    v = sub.add_parser("validate", help="Check a configuration file (default: the one in use)")
    v.add_argument("file", nargs="?", help="The file to check")
    s = sub.add_parser("show", help="Print the effective configuration as TOML")
    s.add_argument("--json", action="store_true", help="Print JSON (daemon.json keys) instead")
    i = sub.add_parser("import", help="Convert a Docker daemon.json into daemon.toml")
    i.add_argument("file", help="The daemon.json to read ('-' for standard input)")
    i.add_argument("-o", "--output", help="Write here instead of standard output ('-' for standard output); "
                   "use --write to write the file in use")
    i.add_argument("--write", action="store_true", help="Write the result to the configuration file in use")
    i.add_argument("--force", action="store_true", help="Overwrite an existing file")
    sub.add_parser("path", help="Print the path of the configuration file in use")


def main(args, ctx) -> int:
    from rootless import config, paths

    if args.action is None:
        raise UsageError("rootless config: a subcommand is required", "run 'rootless config --help'")
    if args.action == "path":
        sys.stdout.write((ctx.config_file or paths.default_config_file()) + "\n")
        return 0
    if args.action == "validate":
        cfg = config.load(args.file or ctx.config_file)
        where = cfg.source or f"{paths.default_config_file()} (absent: defaults apply)"
        sys.stdout.write(f"configuration OK: {where}\n")
        return 0
    if args.action == "show":
        d = ctx.config.as_daemon_dict()
        if args.json:
            sys.stdout.write(json.dumps(d, indent=2) + "\n")
        else:
            sys.stdout.write(config.dumps_toml(d))
        return 0
    # import
    src = args.file
    try:
        text = sys.stdin.read() if src == "-" else open(src, encoding="utf-8").read()
    except OSError as e:
        raise ConfigError(f"read `{src}`: {e.strerror}", "give the path of an existing daemon.json")
    toml_text = "# imported from " + ("standard input" if src == "-" else os.path.abspath(src)) + "\n"
    toml_text += config.import_daemon_json(text, src)
    out = args.output
    if args.write:
        out = ctx.config_file or paths.default_config_file()
    if not out or out == "-":
        sys.stdout.write(toml_text)
        return 0
    if os.path.exists(out) and not args.force:
        raise ConfigError(f"write `{out}`: the file exists", "add --force to replace it")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    paths.atomic_write(out, toml_text.encode())
    sys.stderr.write(f"wrote {out}\n")
    return 0
