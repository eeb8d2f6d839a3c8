"""rootless run: create a container from an image, start it in the foreground, wait for it.

The exit status is the container's (125: rootless itself failed; 126: the command cannot be run;
127: the command was not found), as docker's.
"""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    from rootless.commands.create import add_common

    add_common(p)


def main(args, ctx) -> int:
    from rootless import engine, state
    from rootless.commands.create import build_options
    from rootless.commands.start import start_attached

    opts = build_options(args, ctx.config)
    rec = engine.create(ctx.config, opts, out=sys.stderr, reporter=ctx)
    if args.detach:  # a monitor (rootless.engine.monitor) is its parent; we print the id and return
        from rootless.engine import containers

        containers.start_detached(ctx.config, ctx.config_file, state.Store(ctx.config.data_root), rec)
        sys.stdout.write(rec["Id"] + "\n")
        return 0
    return start_attached(ctx.config, state.Store(ctx.config.data_root), rec, ctx.config_file, reporter=ctx)
