"""rootless volume: create, ls, inspect, rm and prune named volumes (data-root/volumes/<name>/_data)."""

from __future__ import annotations

import argparse
import sys

from rootless.errors import RootlessError, UsageError

HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE",
           "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def add_arguments(p) -> None:
    p.add_argument("subcommand", metavar="COMMAND", help="create, ls, inspect, rm, prune")
    p.add_argument("rest", nargs=argparse.REMAINDER)


def _parser(sub: str):
    from rootless import cli

    p = cli.ArgParser(prog=f"rootless volume {sub}")
    if sub == "create":
        p.add_argument("-d", "--driver", default="local", help="Specify volume driver name (local)")
        p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
        p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options (none yet)")
        p.add_argument("name", nargs="?", default="")
    elif sub in ("ls", "list"):
        p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
        p.add_argument("-f", "--filter", action="append", default=[], help="Filter (dangling=true|false, name=, label=)")
        p.add_argument("--format", default=None, help="Format output using a Go template")
    elif sub == "inspect":
        p.add_argument("-f", "--format", default=None, help="Format output using a Go template")
        p.add_argument("names", nargs="+")
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
    from rootless import volumes
    from rootless.cli import render_error

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
            info["Labels"] = ",".join(f"{k}={v}" for k, v in sorted((info.get("Labels") or {}).items()))
            rows.append(info)
        if ns.quiet:
            sys.stdout.write("".join(r["Name"] + "\n" for r in rows))
            return 0
        from rootless import gotemplate

        fmt = ns.format or "table {{.Driver}}\t{{.Name}}"
        sys.stdout.write(gotemplate.format_rows(fmt, rows, HEADERS))
        return 0
    if sub == "inspect":
        from rootless.commands.inspect import render

        items, status = [], 0
        for name in ns.names:
            try:
                items.append(vs.inspect(name))
            except (RootlessError, UsageError) as e:
                render_error(RootlessError(e.message, None))
                status = 1
        sys.stdout.write(render(items, ns.format or ""))
        return status
    if sub in ("rm", "remove"):
        status = 0
        used = _used(cfg)
        for name in ns.names:
            try:
                if name in used:
                    raise RootlessError(f"remove volume `{name}`: volume is in use by container "
                                        f"`{used[name][0][:12]}`", "remove the container first", exit_code=1)
                vs.remove(name)
            except RootlessError as e:
                render_error(e)
                status = 1
                continue
            sys.stdout.write(name + "\n")
        return status
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
    if removed:
        sys.stdout.write("Deleted Volumes:\n" + "".join(n + "\n" for n in removed) + "\n")
    sys.stdout.write("Total reclaimed space: 0B\n")
    return 0


def _used(cfg):
    from rootless import state

    out = {}
    for rec in state.Store(cfg.data_root).list():
        for m in rec.get("Mounts") or []:
            if m.get("Type") == "volume" and m.get("Name"):
                out.setdefault(m["Name"], []).append(rec["Id"])
    return out


def _match(info, filters, used) -> bool:
    for f in filters:
        k, _, v = f.partition("=")
        if k == "dangling":
            if (info["Name"] not in used) != (v in ("true", "1")):
                return False
        elif k == "name":
            if v not in info["Name"]:
                return False
        elif k == "label":
            lk, sep, lv = v.partition("=")
            labels = info.get("Labels") or {}
            if lk not in labels or (sep and labels[lk] != lv):
                return False
        else:
            raise UsageError(f"invalid filter `{k}`", "use dangling=, name= or label=")
    return True
