"""rootless logout: log out from a registry (docker's config.json), like `docker logout`."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("server", nargs="?", help="The registry (default: Docker Hub)")


def main(args, ctx) -> int:
    from rootless.engine import system

    removed, shown = system.logout(args.server)
    if removed:
        sys.stdout.write(f"Removing login credentials for {shown}\n")
    else:
        sys.stdout.write(f"Not logged in to {shown}\n")
    return 0
