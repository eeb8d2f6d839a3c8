"""rootless restart: stop (StopSignal, SIGKILL after -t) and start again, detached."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("-s", "--signal", default=None, metavar="string", help="Signal to send to the container")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, default=None, metavar="int",
                   help="Seconds to wait before killing the container (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli.objects import each

    return each(args.containers,
                lambda ref: engine.restart(ctx.config, ref, args.time, args.signal, ctx.config_file))
