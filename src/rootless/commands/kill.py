"""rootless kill: send a signal (default SIGKILL) to a running container's main process."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("-s", "--signal", default="KILL", metavar="string", help='Signal to send to the container (default "KILL")')
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli.objects import each

    engine.check_signal(args.signal)  # a bad name fails before anything is signalled
    return each(args.containers, lambda ref: engine.kill(ctx.config, ref, args.signal))
