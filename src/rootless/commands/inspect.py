"""rootless inspect: docker's JSON for containers, images and volumes (or --format of it)."""

from __future__ import annotations

from typing import Any

from rootless.errors import NotFound, UsageError


def add_arguments(p) -> None:
    p.add_argument("-f", "--format", default=None, metavar="string", help="Format output using a Go template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("--type", default="", metavar="string", help="Return JSON for specified type (container, image, volume)")
    p.add_argument("names", nargs="+", metavar="NAME|ID")


KINDS = ("", "container", "image", "volume")


def _check_type(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"use --type `{kind}`: unknown type", "use container, image or volume")


def find(config, ref: str, kind: str = "") -> Any:
    """The inspect JSON of ``ref``: a container, else an image, else a volume (only ``kind`` when given)."""
    from rootless import engine

    _check_type(kind)
    if kind in ("", "container"):
        try:
            return engine.inspect(config, ref)
        except NotFound:
            if kind == "container":
                raise
    if kind in ("", "image"):
        from rootless.engine import images

        try:
            return images.inspect(config, ref)
        except NotFound:
            if kind == "image":
                raise NotFound(f"No such image: {ref}", "see `rootless images`")
    if kind in ("", "volume"):
        from rootless.engine import volumes

        try:
            return volumes.VolumeStore(config.data_root).inspect(ref)
        except (NotFound, UsageError):
            if kind == "volume":
                raise NotFound(f"No such volume: {ref}", "see `rootless volume ls`")
    raise NotFound(f"No such object: {ref}", "give a container, image or volume name or id")


def main(args, ctx) -> int:
    from rootless.cli.objects import inspect_each

    _check_type(args.type)  # a bad --type fails once, not for each name
    return inspect_each(args.names, lambda ref: find(ctx.config, ref, args.type), args.format)
