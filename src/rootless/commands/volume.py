"""rootless volume: create, ls, inspect, rm and prune named volumes (data-root/volumes/<name>/_data)."""

from __future__ import annotations

import sys

from rootless.cli import objects
from rootless.errors import UsageError

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
    if sub == "create":
        spec = volumes.VolumeSpec.from_cli(ns.name, ns.driver, ns.label, ns.opt)
        sys.stdout.write(volumes.create_volume(cfg, spec)["Name"] + "\n")
        return 0
    if sub in ("ls", "list"):
        rows = [dict(info, Labels=objects.labels_text(info)) for info in volumes.list_volumes(cfg, ns.filter)]
        return objects.print_rows(rows, ns, "Name", "table {{.Driver}}\t{{.Name}}", HEADERS)
    if sub == "inspect":
        return objects.inspect_each(ns.names, lambda name: volumes.inspect_volume(cfg, name), ns.format)
    if sub in ("rm", "remove"):

        def remove(name):
            volumes.remove_volume(cfg, name, ns.force)
            return name

        return objects.remove_each(ns.names, remove)
    # prune
    from rootless.cli.output import confirm

    what = "all local volumes not used by at least one container" if ns.all else "all anonymous local volumes not used by at least one container"
    if not confirm(f"WARNING! This will remove {what}.", ns.force):
        return 0
    objects.print_deleted("Volumes", volumes.prune_volumes(cfg, ns.all))
    sys.stdout.write("Total reclaimed space: 0B\n")
    return 0
