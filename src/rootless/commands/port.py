"""rootless port: the port mappings of a container (all of them, or one PRIVATE_PORT[/PROTO])."""

from __future__ import annotations

import sys

from rootless.errors import RootlessError


def add_arguments(p) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def main(args, ctx) -> int:
    from rootless import state

    rec = state.Store(ctx.config.data_root).resolve(args.container)
    ports = (rec.get("NetworkSettings") or {}).get("Ports") or {}
    want = None
    if args.port:
        want = args.port if "/" in args.port else args.port + "/tcp"
        if want not in ports:
            raise RootlessError(f"find port `{args.port}` of `{rec['Name'].lstrip('/')}`: no public port published",
                                "publish it with -p when you run the container", exit_code=1)
    for cport, binds in sorted(ports.items()):
        if want and cport != want:
            continue
        for b in binds or []:
            hp = f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"
            sys.stdout.write(hp + "\n" if want else f"{cport} -> {hp}\n")
    return 0
