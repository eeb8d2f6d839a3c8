"""rootless volume: create, ls, inspect, rm and prune named volumes (data-root/volumes/<name>/_data)."""

from __future__ import annotations

import sys

from rootless.cli import objects
from rootless.errors import RootlessError, UsageError

HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE",
           "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def add_arguments(p) -> None:
    objects.add_arguments(p, "create, ls, inspect, rm, prune")


def _parser(sub: str):
    p = objects.parser(f"rootless volume {sub}")
    if sub == "create":
        p.add_argument("-d", "--driver", default="local", help="Specify volume driver name (local)")
        p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
        p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options (none yet)")
        p.add_argument("name", nargs="?", default="")
    elif sub in ("ls", "list"):
        objects.add_ls_flags(p, "Only display volume names", "Filter (dangling=true|false, name=, label=)")
    elif sub == "inspect":
        objects.add_inspect_flags(p)
    elif sub in ("rm", "remove"):
        p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")
        p.add_argument("names", nargs="+")
    elif sub == "prune":
        p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    else:
        raise UsageError(f"unknown command: volume {sub}", "use create, ls, inspect, rm or prune")
    return p


def main(args, ctx) -> int:
    from rootless.engine import volumes

    sub = args.subcommand
    ns = _parser(sub).parse_args(args.rest)
    cfg = ctx.config
    vs = volumes.VolumeStore(cfg.data_root)
    if sub == "create":
        if ns.driver != "local":
            raise UsageError(f"use volume driver `{ns.driver}`: not supported", "use the local driver")
        if ns.opt:
            raise UsageError("use volume options: not supported by the local driver here", "drop -o")
        labels = {}
        for item in ns.label:
            k, _, v = item.partition("=")
            labels[k] = v
        name, _ = vs.create(volumes.check_name(ns.name) if ns.name else None, labels=labels)
        sys.stdout.write(name + "\n")
        return 0
    if sub in ("ls", "list"):
        used = _used(cfg)
        rows = []
        for name in vs.names():
            info = vs.inspect(name)
            if not _match(info, ns.filter, used):
                continue
            info = dict(info)
            info["Labels"] = objects.labels_text(info)
            rows.append(info)
        return objects.print_rows(rows, ns, "Name", "table {{.Driver}}\t{{.Name}}", HEADERS)
    if sub == "inspect":
        return objects.inspect_each(ns.names, vs.inspect, ns.format)
    if sub in ("rm", "remove"):
        used = _used(cfg)

        def remove(name):
            if name in used:
                raise RootlessError(f"remove volume `{name}`: volume is in use by container "
                                    f"`{used[name][0][:12]}`", "remove the container first", exit_code=1)
            vs.remove(name)
            return name

        return objects.remove_each(ns.names, remove)
    # prune
    from rootless.commands.image import confirm

    what = "all local volumes not used by at least one container" if ns.all else "all anonymous local volumes not used by at least one container"
    if not confirm(f"WARNING! This will remove {what}.", ns.force):
        return 0
    used = _used(cfg)
    removed = []
    for name in vs.names():
        if name in used or (not ns.all and not vs.meta(name).get("Anonymous")):
            continue
        try:
            vs.remove(name)
            removed.append(name)
        except (RootlessError, OSError):
            continue
    objects.print_deleted("Volumes", removed)
    sys.stdout.write("Total reclaimed space: 0B\n")
    return 0


def _used(cfg):
    from rootless.engine import volumes

    return volumes.in_use(cfg.data_root)


def _match(info, filters, used) -> bool:
    tests = {
        "dangling": lambda info, v: (info["Name"] not in used) == (v in ("true", "1")),
        "name": lambda info, v: v in info["Name"],
        "label": objects.has_label,
    }
    return objects.matches(info, filters, tests,
                           unknown=lambda f, k: UsageError(f"invalid filter `{k}`", "use dangling=, name= or label="))
