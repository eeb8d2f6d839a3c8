"""rootless version: client and engine versions, like `docker version`."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("-f", "--format", help="Format the output using the given Go template")


def main(args, ctx) -> int:
    from rootless.engine import system

    d = system.version()
    if args.format:
        from rootless.cli import gotemplate

        sys.stdout.write(gotemplate.render(args.format, d) + "\n")
        return 0
    c, s = d["Client"], d["Server"]
    sys.stdout.write(
        "Client:\n"
        f" Version:        {c['Version']}\n"
        f" API version:    {c['ApiVersion']}\n"
        f" Python version: {c['PythonVersion']}\n"
        f" OS/Arch:        linux/{c['Arch']}\n"
        "\n"
        "Server: rootless (no daemon: the engine runs in this process)\n"
        f" Version:        {s['Version']}\n"
        f" API version:    {s['ApiVersion']} (minimum version {s['MinAPIVersion']})\n"
        f" Kernel:         {s['KernelVersion']}\n"
    )
    return 0
