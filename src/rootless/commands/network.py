"""rootless network: create, ls, inspect, rm, prune, connect and disconnect user-defined networks.

The predefined networks are listed too: ``slirp4netns`` (the default; ``bridge`` is accepted as
its alias by --network, but it is listed under its real name because, unlike docker's bridge, its
containers do not reach each other), ``host`` and ``none``. See network/usernet.py for the design.
"""

from __future__ import annotations

import sys

from rootless.cli import objects
from rootless.errors import RootlessError, UsageError

HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Labels": "LABELS",
           "Internal": "INTERNAL", "CreatedAt": "CREATED AT"}


def add_arguments(p) -> None:
    objects.add_arguments(p, "create, ls, inspect, rm, prune, connect, disconnect")


def _parser(sub: str):
    p = objects.parser(f"rootless network {sub}")
    if sub == "create":
        p.add_argument("-d", "--driver", default="bridge", help="Driver to manage the network (bridge)")
        p.add_argument("--subnet", default="", help="Subnet in CIDR format (default: a free 10.89.N.0/24)")
        p.add_argument("--gateway", default="", help="IPv4 gateway for the subnet (default: its first address)")
        p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
        p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
        p.add_argument("name")
    elif sub in ("ls", "list"):
        objects.add_ls_flags(p, "Only display network IDs", "Filter (name=, id=, driver=, label=)")
        p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    elif sub == "inspect":
        objects.add_inspect_flags(p)
    elif sub in ("rm", "remove"):
        p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")
        p.add_argument("names", nargs="+")
    elif sub == "prune":
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    elif sub in ("connect", "disconnect"):
        if sub == "disconnect":
            p.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect")
        p.add_argument("network")
        p.add_argument("container")
    else:
        raise UsageError(f"unknown command: network {sub}",
                         "use create, ls, inspect, rm, prune, connect or disconnect")
    return p


def _all(cfg):
    from rootless.network import usernet

    out = [usernet.predefined_dict(n, d) for n, d in usernet.PREDEFINED]
    return out + [usernet.inspect_dict(n) for n in usernet.load_all(cfg.data_root)]


FILTERS = {
    "name": lambda info, v: v in info["Name"],
    "id": lambda info, v: info["Id"].startswith(v),
    "driver": lambda info, v: info["Driver"] == v,
    "label": objects.has_label,
}


def _match(info, filters) -> bool:
    return objects.matches(
        info, filters, FILTERS,
        unknown=lambda f, key: UsageError(f"parse filter `{f}`: unknown filter `{key}`",
                                          "use name=, id=, driver= or label="),
        no_value=lambda f: UsageError(f"parse filter `{f}`: expected key=value", "e.g. --filter name=mynet"),
    )


def _container(cfg, ref: str):
    from rootless import state

    rec = state.Store(cfg.data_root).resolve(ref)
    s = rec.get("State") or {}
    if not (s.get("Running") and state.is_alive(s)):
        raise RootlessError(f"find container `{ref}`: it is not running",
                            "start it first; a stopped container joins its networks when it starts", exit_code=1)
    return rec


def main(args, ctx) -> int:
    from rootless.engine import events
    from rootless.network import usernet

    sub = args.subcommand
    ns = _parser(sub).parse_args(args.rest)
    cfg = ctx.config
    if sub == "create":
        if ns.driver != "bridge":
            raise UsageError(f"use network driver `{ns.driver}`: not supported", "use the bridge driver (the default)")
        net = usernet.create(cfg.data_root, ns.name, subnet=ns.subnet, gateway=ns.gateway, internal=ns.internal,
                             labels=usernet.parse_labels(ns.label))
        events.emit(cfg, "network", "create", net["Id"], {"name": net["Name"], "type": "bridge"})
        sys.stdout.write(net["Id"] + "\n")
        return 0
    if sub in ("ls", "list"):
        rows = []
        for info in _all(cfg):
            if not _match(info, ns.filter):
                continue
            row = dict(info)
            row["ID"] = info["Id"] if ns.no_trunc else info["Id"][:12]
            row["CreatedAt"] = info["Created"]
            row["Labels"] = objects.labels_text(info)
            rows.append(row)
        return objects.print_rows(rows, ns, "ID", "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", HEADERS)
    if sub == "inspect":
        known = {i["Name"]: i for i in _all(cfg)}

        def get(name):
            info = known.get(name)
            if info is None:
                n = usernet.find(cfg.data_root, name)
                info = usernet.inspect_dict(n) if n else None
            if info is None:
                raise RootlessError(f"inspect network `{name}`: no such network")
            return info

        return objects.inspect_each(ns.names, get, ns.format)
    if sub in ("rm", "remove"):

        def remove(name):
            if name in dict(usernet.PREDEFINED) or name in usernet.RESERVED:
                raise RootlessError(f"remove network `{name}`: it is a predefined network", "it cannot be removed",
                                    exit_code=1)
            if ns.force and usernet.find(cfg.data_root, name) is None:
                return None
            net_id = (usernet.find(cfg.data_root, name) or {}).get("Id") or name
            gone = usernet.remove(cfg.data_root, cfg.exec_root, name)
            events.emit(cfg, "network", "destroy", net_id, {"name": gone, "type": "bridge"})
            return gone

        return objects.remove_each(ns.names, remove)
    if sub == "prune":
        from rootless.commands.image import confirm

        if not confirm("WARNING! This will remove all custom networks not used by at least one container.", ns.force):
            return 0
        objects.print_deleted("Networks", usernet.prune(cfg.data_root, cfg.exec_root))
        return 0
    # connect / disconnect
    net = usernet.get(cfg.data_root, ns.network)
    rec = _container(cfg, ns.container)
    cname = (rec.get("Name") or "").lstrip("/")
    if sub == "connect":
        usernet.attach(cfg.data_root, cfg.exec_root, net["Id"], int(rec["State"]["Pid"]), container_id=rec["Id"],
                       name=cname, hostname=(rec.get("Config") or {}).get("Hostname") or "",
                       hosts_path=rec.get("HostsPath") or "")
        events.emit(cfg, "network", "connect", net["Id"], {"container": rec["Id"], "name": net["Name"], "type": "bridge"})
        return 0
    if rec["Id"] not in usernet.live_containers(net):
        raise RootlessError(f"disconnect container `{cname}` from network `{net['Name']}`: it is not connected",
                            "see `rootless network inspect " + net["Name"] + "`", exit_code=1)
    problems = usernet.release(cfg.data_root, cfg.exec_root, rec["Id"], net_ref=net["Id"])
    if problems:
        raise RootlessError(f"disconnect container `{cname}` from network `{net['Name']}`: {problems[0]}",
                            "see `rootless network inspect " + net["Name"] + "`")
    events.emit(cfg, "network", "disconnect", net["Id"], {"container": rec["Id"], "name": net["Name"], "type": "bridge"})
    return 0
