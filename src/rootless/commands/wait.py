"""rootless wait: block until containers stop (or --condition), then print their exit codes."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--condition", default="not-running", choices=("not-running", "next-exit", "removed"),
                   metavar="string",
                   help='Wait until the container is not-running, has its next-exit, or is removed (default "not-running")')
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.cli.objects import each

    return each(args.containers, lambda ref: engine.wait(ctx.config, ref, args.condition),
                show=lambda ref, code: str(code))
