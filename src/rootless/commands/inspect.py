"""rootless inspect: docker's JSON for containers, images and volumes (or --format of it)."""

from __future__ import annotations

import json
import sys
from typing import Any, List

from rootless.errors import NotFound, RootlessError, UsageError


def add_arguments(p) -> None:
    p.add_argument("-f", "--format", default=None, metavar="string", help="Format output using a Go template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("--type", default="", metavar="string", help="Return JSON for specified type (container, image, volume)")
    p.add_argument("names", nargs="+", metavar="NAME|ID")


def find(config, ref: str, kind: str = "") -> Any:
    from rootless import state
    from rootless.engine import containers

    if kind not in ("", "container", "image", "volume"):
        raise UsageError(f"use --type `{kind}`: unknown type", "use container, image or volume")
    if kind in ("", "container"):
        try:
            rec = state.Store(config.data_root).resolve(ref)
            return containers.inspect_data(rec)
        except NotFound:
            if kind == "container":
                raise
    if kind in ("", "image"):
        from rootless.commands.image import inspect_data
        from rootless.image.store import ImageStore

        img = ImageStore(config.data_root).lookup(ref)
        if img is not None:
            return inspect_data(config, img)
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


def render(items: List[Any], fmt: str) -> str:
    if not fmt:
        return json.dumps(items, indent=4, ensure_ascii=False) + "\n"
    from rootless.cli import gotemplate

    if fmt == "json":
        fmt = "{{json .}}"
    try:
        return "".join(gotemplate.render(fmt, it) + "\n" for it in items)
    except Exception as e:  # noqa: BLE001 - a template error is the user's
        raise UsageError(f"parse --format `{fmt}`: {e}", "see https://docs.docker.com/config/formatting/")


def main(args, ctx) -> int:
    from rootless.cli import render_error

    items = []
    status = 0
    for ref in args.names:
        try:
            items.append(find(ctx.config, ref, args.type))
        except NotFound as e:
            render_error(RootlessError(e.message, None))
            status = 1
    if items or not args.format:
        sys.stdout.write(render(items, args.format or ""))
    return status
