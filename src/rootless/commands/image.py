"""rootless image: manage images (ls, inspect, rm, prune, tag, history, save, load, push, pull)."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any, Dict, List, Optional

from rootless.errors import NotFound, RootlessError, UsageError

# subcommand -> (module under rootless.commands, help); inspect and prune live here
SUBCOMMANDS = {
    "ls": ("images", "List images"),
    "list": ("images", "List images"),
    "inspect": (None, "Display detailed information on one or more images"),
    "rm": ("rmi", "Remove one or more images"),
    "remove": ("rmi", "Remove one or more images"),
    "prune": (None, "Remove unused images"),
    "tag": ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "history": ("history", "Show the history of an image"),
    "save": ("save", "Save one or more images to a tar archive"),
    "load": ("load", "Load an image from a tar archive"),
    "push": ("push", "Upload an image to a registry"),
    "pull": ("pull", "Download an image from a registry"),
}


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="image_command", metavar="COMMAND")
    for name, (mod, text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=text, description=text)
        if mod is not None:
            importlib.import_module(f"rootless.commands.{mod}").add_arguments(sp)
        elif name == "inspect":
            add_inspect_arguments(sp)
        elif name == "prune":
            add_prune_arguments(sp)


def main(args, ctx) -> int:
    name = args.image_command
    if not name:
        raise UsageError("image: a subcommand is needed", "see 'rootless image --help' (ls, inspect, rm, prune, ...)")
    mod = SUBCOMMANDS[name][0]
    if mod is not None:
        return int(importlib.import_module(f"rootless.commands.{mod}").main(args, ctx) or 0)
    if name == "inspect":
        return inspect_main(args, ctx)
    return prune_main(args, ctx)


# --- inspect ------------------------------------------------------------------------------------

_CONFIG_DEFAULTS: Dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def add_inspect_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="Format output using a Go template")


def graph_driver(config: Any, img) -> Dict[str, Any]:
    try:
        from rootless.storage.layers import LayerStore
        from rootless.storage.select import choose

        c = choose(config)
    except (RootlessError, ImportError):
        return {"Data": None, "Name": config.storage_driver or "overlay2"}
    if c.fmt == "vfs" or not img.chain_ids:
        return {"Data": None, "Name": c.name}
    ls = LayerStore(config.data_root, c.fmt)
    dirs = [ls.path(ch) for ch in img.chain_ids]
    top = dirs[-1]
    base = top.rsplit("/", 1)[0]
    data = {"MergedDir": base + "/merged", "UpperDir": top, "WorkDir": base + "/work"}
    if len(dirs) > 1:
        data = {"LowerDir": ":".join(reversed(dirs[:-1])), **data}
    return {"Data": data, "Name": c.name}


def inspect_data(config: Any, img) -> Dict[str, Any]:
    """docker's ImageInspect JSON for one image."""
    cfg = img.config
    c = dict(_CONFIG_DEFAULTS)
    c.update(cfg.get("config") or {})
    d: Dict[str, Any] = {
        "Id": img.id,
        "RepoTags": list(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Parent": "",
        "Comment": str(cfg.get("comment") or ""),
        "Created": img.created or "0001-01-01T00:00:00Z",
        "DockerVersion": str(cfg.get("docker_version") or ""),
        "Author": str(cfg.get("author") or ""),
        "Config": c,
        "Architecture": str(cfg.get("architecture") or ""),
    }
    if cfg.get("variant"):
        d["Variant"] = cfg["variant"]
    d.update({
        "Os": str(cfg.get("os") or ""),
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": graph_driver(config, img),
        "RootFS": {"Type": "layers", "Layers": list(img.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
    return d


def inspect_main(args, ctx) -> int:
    from rootless.cli import render_error
    from rootless.image.store import ImageStore

    store = ImageStore(ctx.config.data_root)
    out: List[Dict[str, Any]] = []
    missing: List[str] = []
    for name in args.images:
        img = store.lookup(name)
        if img is None:
            missing.append(name)
            continue
        out.append(inspect_data(ctx.config, img))
    if args.format:
        from rootless.cli import gotemplate

        for d in out:
            sys.stdout.write(gotemplate.render(args.format, d) + "\n")
    else:
        sys.stdout.write(json.dumps(out, indent=4) + "\n")
    if missing:
        sys.stdout.flush()
        for m in missing:
            render_error(NotFound(f"No such image: {m}"))
        return 1
    return 0


# --- prune --------------------------------------------------------------------------------------

def add_prune_arguments(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (until=, label=)")


def confirm(text: str, force: bool) -> bool:
    if force:
        return True
    sys.stdout.write(text + "\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def prune_images(config: Any, all_images: bool = False, until: Optional[float] = None) -> tuple:
    """Remove dangling (or, with all_images, all unused) images. Returns (lines, bytes reclaimed)."""
    from rootless.image import reference
    from rootless.image.store import ImageStore

    store = ImageStore(config.data_root)
    lines: List[str] = []
    reclaimed = 0
    for img in store.list():
        if not all_images and not img.dangling:
            continue
        if store.in_use_check(img.id):
            continue
        if until is not None and img.added > until:
            continue
        for t in img.full_tags + img.full_digests:
            store.untag(t)
            lines.append(f"untagged: {reference.familiar_string(t)}")
        chains = store.remove_image(img)
        reclaimed += img.size
        lines.append(f"deleted: {img.id}")
        lines.extend(f"deleted: {c}" for c in chains if c != img.id)
    return lines, reclaimed


def _until(filters: List[str]) -> Optional[float]:
    from rootless.commands.images import parse_filters

    f = parse_filters(filters, ("until", "label"))
    if "label" in f:
        raise UsageError("image prune --filter label=...: not supported", "images are pruned by age (until=) only")
    if "until" not in f:
        return None
    import re
    import time

    v = f["until"][-1]
    m = re.match(r"^(\d+)([smh])$", v)
    if m:
        return time.time() - int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    from rootless.image.progress import parse_time

    t = parse_time(v) if not v.isdigit() else float(v)
    if t is None:
        raise UsageError(f"invalid filter 'until={v}'", "use a duration like 24h or an RFC 3339 time")
    return t


def prune_main(args, ctx) -> int:
    from rootless.image.progress import human_size

    until = _until(args.filter)
    text = ("WARNING! This will remove all images without at least one container associated to them."
            if args.all else "WARNING! This will remove all dangling images.")
    if not confirm(text, args.force):
        return 0
    lines, reclaimed = prune_images(ctx.config, args.all, until)
    if lines:
        sys.stdout.write("Deleted Images:\n" + "".join(line + "\n" for line in lines) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
