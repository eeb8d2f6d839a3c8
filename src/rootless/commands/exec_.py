"""rootless exec: run a command in a running container (its namespaces, root, env, user, caps).

The exit status is the command's; 126 when it cannot be run, 127 when it is not found (docker's).
"""

from __future__ import annotations

import argparse


def add_arguments(p) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], metavar="list", help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], metavar="list", help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", default="", metavar="string", help="Working directory inside the container")
    p.add_argument("-u", "--user", default="", metavar="string", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli.envflags import env_file, env_item
    from rootless.errors import UsageError

    if not args.command:
        raise UsageError("exec: no command given", "give a command after the container, e.g. `rootless exec web ps`")
    if args.workdir and not args.workdir.startswith("/"):
        raise UsageError(f"use working directory `{args.workdir}`: not an absolute path", "give -w an absolute path")
    env = []
    for path in args.env_file:
        env += env_file(path)
    for item in args.env:
        env += env_item(item)
    opts = engine.ExecOptions(args.command, env, args.workdir, args.user, args.tty, args.interactive,
                              args.detach, args.privileged)
    return _exec_attached(ctx.config, args.container, opts)


def _exec_attached(config, ref: str, opts) -> int:
    """The face's part of exec: the command's stdio, signals forwarded to it, the copy loop.

    With -t (or -d) the command gets our stdin (with -i) or /dev/null; without -t never a terminal
    of ours: pipes that we copy (terminal.PlainRelay)."""
    import os

    from rootless import engine
    from rootless.cli.terminal import PidTarget, PlainRelay, SignalForwarder, pump_tty

    relay = None
    opened = None
    if opts.tty or opts.detach:
        if not opts.interactive:
            opened = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        stdio = engine.Stdio(stdin=opened)
    else:
        relay = PlainRelay(opts.interactive)
        stdio = relay.stdio()

    def attach(started) -> None:
        if started.pty_master is not None:
            pump_tty(started.pty_master, opts.interactive)
        if relay is not None:
            relay.started()
            relay.run(started.poll)

    with SignalForwarder() as fwd:
        try:
            return engine.exec(config, ref, opts, stdio, on_pid=lambda pid: fwd.set_target(PidTarget(pid)),
                               attach=attach)
        finally:
            if relay is not None:
                relay.close()
            if opened is not None:
                os.close(opened)
