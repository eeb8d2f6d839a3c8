"""rootless version: client and engine versions, like `docker version`."""

from __future__ import annotations

import platform
import sys

from rootless import API_VERSION, __version__


def add_arguments(p) -> None:
    p.add_argument("-f", "--format", help="Format the output using the given Go template")


def data() -> dict:
    return {
        "Client": {
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "PythonVersion": platform.python_version(),
            "Os": sys.platform,
            "Arch": platform.machine(),
        },
        "Server": {
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.24",
            "KernelVersion": platform.release(),
            "Os": "linux",
            "Arch": platform.machine(),
        },
    }


def main(args, ctx) -> int:
    d = data()
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
