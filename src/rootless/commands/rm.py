"""rootless rm: remove containers (their writable layer, record, logs and generated files)."""

from __future__ import annotations

import sys

from rootless.errors import RootlessError


def add_arguments(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER", help="The containers to remove")


def main(args, ctx) -> int:
    from rootless import engine

    status = 0
    for ref in args.containers:
        try:
            rec = None
            if args.volumes:
                from rootless import state

                rec = state.Store(ctx.config.data_root).resolve(ref)
            engine.remove(ctx.config, ref, force=args.force, reporter=ctx)
            if rec is not None:
                from rootless.engine import volumes

                volumes.remove_anonymous(ctx.config, rec)  # named volumes stay, as docker
        except RootlessError as e:
            sys.stderr.write(f"error: {e.message}\n")
            if e.hint:
                sys.stderr.write(f"hint: {e.hint}\n")
            status = 1
            continue
        sys.stdout.write(ref + "\n")
    return status
