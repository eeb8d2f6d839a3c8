"""rootless port: the port mappings of a container (all of them, or one PRIVATE_PORT[/PROTO])."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def main(args, ctx) -> int:
    from rootless import engine

    for cport, host in engine.port(ctx.config, args.container, args.port):
        sys.stdout.write(host + "\n" if args.port else f"{cport} -> {host}\n")
    return 0
