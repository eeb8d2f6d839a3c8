"""rootless restart: stop (StopSignal, SIGKILL after -t) and start again, detached."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("-s", "--signal", default=None, metavar="string", help="Signal to send to the container")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, default=None, metavar="int",
                   help="Seconds to wait before killing the container (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import state
    from rootless.commands.stop import each
    from rootless.engine import containers, events

    def one(ref: str) -> None:
        containers.stop(ctx.config, ref, args.time, args.signal)
        store = state.Store(ctx.config.data_root)
        rec = store.resolve(ref)
        containers.start_detached(ctx.config, ctx.config_file, store, rec)
        events.container(ctx.config, rec, "restart")

    return each(args.containers, one)
