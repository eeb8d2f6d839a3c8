"""rootless info: system-wide information, like `docker info`, plus rootless pitfalls."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("-f", "--format", help="Format the output using the given Go template ('json' for JSON)")


def main(args, ctx) -> int:
    from rootless.engine import system

    d, warnings = system.info(ctx.config)
    if args.format:
        if args.format == "json":
            import json

            sys.stdout.write(json.dumps(d) + "\n")
        else:
            from rootless.cli import gotemplate

            sys.stdout.write(gotemplate.render(args.format, d) + "\n")
        return 0
    from rootless import __version__, sysinfo

    sys.stdout.write(f"Client:\n Version: {__version__}\n Context: rootless\n Debug Mode: {str(ctx.debug).lower()}\n\n")
    sys.stdout.write(sysinfo.render_text(d))
    if warnings:
        sys.stdout.flush()
        for w in warnings:
            sys.stderr.write(f"warning: {w.text}\n")
            if w.hint:
                sys.stderr.write(f"hint: {w.hint}\n")
    return 0
