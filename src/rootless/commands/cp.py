"""rootless cp: copy files between a container and the host (confined to the container's root)."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (accepted; files copied in belong to root)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output (there is none)")
    p.add_argument("src", metavar="SRC", help="CONTAINER:SRC_PATH, a host path, or - (a tar on stdin)")
    p.add_argument("dest", metavar="DEST", help="CONTAINER:DEST_PATH, a host path, or - (a tar on stdout)")


def main(args, ctx) -> int:
    from rootless import engine
    from rootless.errors import UsageError

    sc, sp = engine.split_copy_arg(args.src)
    dc, dp = engine.split_copy_arg(args.dest)
    if (sc is None) == (dc is None):
        raise UsageError("copy: give exactly one CONTAINER:PATH", "e.g. `rootless cp web:/etc/hosts .` or "
                         "`rootless cp file web:/tmp`")
    if sc is not None:
        engine.copy_from(ctx.config, sc, sp, dp, follow=args.follow_link)
    else:
        engine.copy_to(ctx.config, dc, sp, dp)
    return 0
