"""The docker-like command line. One of the two places that render errors (the other is api/).

Commands live in ``rootless.commands.<module>`` and are imported only when used, so that
``rootless run`` of a local image imports neither requests nor pyroute2. Each command module has
``add_arguments(parser)`` and ``main(args, ctx) -> int``.
"""

from __future__ import annotations

import os
import sys

from rootless import __version__
from rootless.errors import EXIT_ENGINE, RootlessError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings here
    from typing import Dict, List, Optional, Sequence, Tuple

# name -> (module under rootless.commands, one-line help). Listed in --help when the module exists.
COMMANDS: Dict[str, Tuple[str, str]] = {
    # containers
    "run": ("run", "Create and run a new container from an image"),
    "create": ("create", "Create a new container"),
    "start": ("start", "Start one or more stopped containers"),
    "stop": ("stop", "Stop one or more running containers"),
    "restart": ("restart", "Restart one or more containers"),
    "kill": ("kill", "Kill one or more running containers"),
    "rm": ("rm", "Remove one or more containers"),
    "ps": ("ps", "List containers"),
    "logs": ("logs", "Fetch the logs of a container"),
    "exec": ("exec_", "Execute a command in a running container"),
    "wait": ("wait", "Block until one or more containers stop, then print their exit codes"),
    "inspect": ("inspect", "Return low-level information on containers, images, volumes or networks"),
    "port": ("port", "List port mappings of a container"),
    "top": ("top", "Display the running processes of a container"),
    "stats": ("stats", "Display a live stream of container resource usage"),
    "update": ("update", "Update the resource limits of one or more containers"),
    "pause": ("pause", "Pause all processes within one or more containers"),
    "unpause": ("unpause", "Unpause all processes within one or more containers"),
    "rename": ("rename", "Rename a container"),
    "cp": ("cp", "Copy files between a container and the host"),
    "diff": ("diff", "Inspect changes to files on a container's filesystem"),
    "export": ("export", "Export a container's filesystem as a tar archive"),
    "commit": ("commit", "Create a new image from a container's changes"),
    "container": ("container", "Manage containers (ls, prune, ...)"),
    # images
    "pull": ("pull", "Download an image from a registry"),
    "push": ("push", "Upload an image to a registry"),
    "images": ("images", "List images"),
    "image": ("image", "Manage images (ls, inspect, rm, prune, ...)"),
    "rmi": ("rmi", "Remove one or more images"),
    "tag": ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "history": ("history", "Show the history of an image"),
    "save": ("save", "Save one or more images to a tar archive"),
    "load": ("load", "Load an image from a tar archive"),
    "login": ("login", "Log in to a registry"),
    "logout": ("logout", "Log out from a registry"),
    # other objects
    "volume": ("volume", "Manage volumes"),
    "network": ("network", "Manage networks"),
    # engine
    "info": ("info", "Display system-wide information"),
    "events": ("events", "Get real time events from the engine (follows until ctrl-c or --until)"),
    "version": ("version", "Show the rootless version information"),
    "config": ("config", "Check or import the daemon.toml configuration"),
    "system": ("system", "Manage rootless (df, prune, info, events, warm)"),
    "runtime": ("runtime", "The OCI low-level runtime (create, start, state, kill, delete, run)"),
    "helper": ("helper", "Run the root network helper (bridge mode)"),
    "serve": ("serve", "Serve the Docker Engine API on a unix socket"),
}


class Context:
    """What every command gets: global options and the configuration, loaded on first use."""

    def __init__(self, config_file: Optional[str], debug: bool, log_level: Optional[str]):
        self.config_file = config_file
        self._debug = debug
        self.log_level = log_level
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from rootless import config

            cfg = config.load(self.config_file)
            from rootless import trust

            # a data-root or exec-root someone else owns or can write is refused before any state
            # in it is read (issue 11 item 3: a forged /tmp/rootless-run-<uid> from another user)
            trust.check_roots(cfg.data_root, cfg.exec_root)
            if self._debug or self.log_level:
                import dataclasses

                changes = {}
                if self._debug:
                    changes["debug"] = True
                if self.log_level:
                    changes["log_level"] = self.log_level
                cfg = dataclasses.replace(cfg, **changes)
            self._config = cfg
        return self._config

    @property
    def debug(self) -> bool:
        if self._debug or self.log_level == "debug":
            return True
        if self._config is not None:
            return self._config.debug_enabled
        return os.environ.get("ROOTLESS_DEBUG", "") not in ("", "0")

    def warn(self, message: str, hint: Optional[str] = None) -> None:
        """The CLI is the engine's reporter (rootless.report): ``warning: ...`` lines on stderr."""
        from rootless.report import render

        sys.stderr.write(render(message, hint))


def _make_argparser_class():
    import argparse

    class ArgParser(argparse.ArgumentParser):
        """argparse that raises UsageError (exit 125, like docker) instead of exiting 2."""

        def __init__(self, *a, **kw):
            kw.setdefault("allow_abbrev", False)
            super().__init__(*a, **kw)

        def error(self, message: str):  # type: ignore[override]
            if message.startswith("the following arguments are required"):
                arity = self._arity()
                if arity:
                    raise UsageError(arity, f"see '{self.prog} --help'")
            raise UsageError(f"{self.prog}: {message}", f"see '{self.prog} --help'")

        def _arity(self) -> str:
            """docker's words for missing arguments: `"docker tag" requires exactly 2 arguments`."""
            least, exact = 0, True
            for a in self._actions:
                if a.option_strings or a.nargs == argparse.SUPPRESS:
                    continue
                if a.nargs is None:
                    least += 1
                elif isinstance(a.nargs, int):
                    least += a.nargs
                elif a.nargs == "+":
                    least, exact = least + 1, False
                elif a.nargs in ("*", "?", argparse.REMAINDER):
                    exact = False
                else:  # subcommands
                    return ""
            if not least:
                return ""
            plural = "s" if least != 1 else ""
            return f'"{self.prog}" requires {"exactly" if exact else "at least"} {least} argument{plural}'

    return ArgParser


def __getattr__(name: str):
    # `rootless.cli.ArgParser` is built on first use, so `--version` does not import argparse.
    if name == "ArgParser":
        cls = _make_argparser_class()
        globals()["ArgParser"] = cls
        return cls
    raise AttributeError(name)


def _module_exists(mod: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(f"rootless.commands.{mod}") is not None
    except (ImportError, ValueError):
        return False


def command_module(word: str):
    """The module of top-level command ``word`` (for aliases such as `image ls` or `system info`:
    commands never import each other)."""
    import importlib

    return importlib.import_module("rootless.commands." + COMMANDS[word][0])


def usage_text() -> str:
    lines = [
        "Usage:  rootless [OPTIONS] COMMAND",
        "",
        "A container engine for unprivileged users: docker's commands, no root, no root daemon.",
        "",
        "Options:",
        "      --config-file string   Location of the daemon.toml (default $XDG_CONFIG_HOME/rootless/daemon.toml)",
        "  -D, --debug                Enable debug output (tracebacks on errors)",
        "  -l, --log-level string     Set the logging level (debug, info, warn, error, fatal)",
        "  -v, --version              Print version information and quit",
        "  -h, --help                 Print usage",
        "",
        "Commands:",
    ]
    for name, (mod, text) in COMMANDS.items():
        if _module_exists(mod):
            lines.append(f"  {name:<10} {text}")
    lines += ["", "Run 'rootless COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def split_global(argv: Sequence[str]) -> Tuple[Dict[str, object], List[str]]:
    """Take the global options that stand before the command word."""
    opts: Dict[str, object] = {"config_file": None, "debug": False, "log_level": None, "help": False, "version": False}
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a in ("-D", "--debug"):
            opts["debug"] = True
        elif a in ("-h", "--help"):
            opts["help"] = True
        elif a in ("-v", "--version"):
            opts["version"] = True
        elif a in ("--config-file", "--config", "-l", "--log-level"):
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: {a}", "see 'rootless --help'")
            key = "config_file" if a.startswith("--config") else "log_level"
            opts[key] = argv[i + 1]
            i += 1
        elif a.startswith("--config-file=") or a.startswith("--log-level="):
            k, v = a[2:].split("=", 1)
            opts[k.replace("-", "_")] = v
        elif a.startswith("-") and a != "-":
            raise UsageError(f"unknown flag: {a}", "see 'rootless --help'")
        else:
            break
        i += 1
    level = opts["log_level"]
    if level is not None and level not in ("debug", "info", "warn", "error", "fatal"):
        raise UsageError(f"invalid --log-level `{level}`", "use one of debug, info, warn, error, fatal")
    return opts, argv[i:]


def build_parser(name: str, mod_name: str, help_text: str):
    """The command's module and parser, or None when the command is not built."""
    import importlib

    full = f"rootless.commands.{mod_name}"
    try:
        mod = importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name == full:
            return None
        raise
    parser = _make_argparser_class()(prog=f"rootless {name}", description=help_text)
    mod.add_arguments(parser)
    return mod, parser


_PARSERS: Dict[str, object] = {}


def cached_parser(name: str):
    """build_parser for the command word ``name``, once per process (the warm server builds the
    common ones before it forks, so each command it runs starts with its parser made)."""
    if name not in _PARSERS:
        entry = COMMANDS.get(name)
        _PARSERS[name] = build_parser(name, entry[0], entry[1]) if entry is not None else None
    return _PARSERS[name]


def dispatch(argv: Sequence[str], ctx_holder: List[Context]) -> int:
    opts, rest = split_global(argv)
    ctx = Context(opts["config_file"], bool(opts["debug"]), opts["log_level"])  # type: ignore[arg-type]
    ctx_holder.append(ctx)
    if opts["version"]:
        sys.stdout.write(f"rootless version {__version__}\n")
        return 0
    if not rest:
        sys.stdout.write(usage_text())
        return 0 if opts["help"] else 1
    name, args = rest[0], rest[1:]
    mod_parser = cached_parser(name)
    if mod_parser is None:
        raise UsageError(f"unknown command: {name}", "see 'rootless --help' for the commands")
    mod, parser = mod_parser
    ns = parser.parse_args(args)
    return int(mod.main(ns, ctx) or 0)


def render_error(e: RootlessError, out=None) -> None:
    out = out or sys.stderr
    out.write(f"error: {e.message}\n")
    if e.hint:
        out.write(f"hint: {e.hint}\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    holder: List[Context] = []
    try:
        return dispatch(argv, holder)
    except RootlessError as e:
        if holder and holder[0].debug:
            import traceback

            traceback.print_exc()
        render_error(e)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rootless ps | head`: the reader went away; say nothing, like docker.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a bare traceback
        debug = bool(holder) and holder[0].debug
        if debug:
            import traceback

            traceback.print_exc()
        from rootless import oserrors

        # a full disk, a quota, a read-only or forbidden path, JSON nested too deep: not our bug
        known = oserrors.explain(e)
        if known is not None:
            render_error(known)
            return known.exit_code
        render_error(
            RootlessError(
                f"internal error: {type(e).__name__}: {e}",
                "this is a bug in rootless; run again with --debug to see where, and report it"
                if not debug
                else "this is a bug in rootless; please report the traceback above",
            )
        )
        return EXIT_ENGINE
