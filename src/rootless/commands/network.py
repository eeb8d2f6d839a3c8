"""rootless network: create, ls, inspect, rm, prune, connect and disconnect user-defined networks
(through rootless.engine.networks).

The predefined networks are listed too: ``slirp4netns`` (the default; ``bridge`` is accepted as
its alias by --network, but it is listed under its real name because, unlike docker's bridge, its
containers do not reach each other), ``host`` and ``none``. See network/usernet.py for the design.
"""

from __future__ import annotations

import sys

from rootless.cli import objects
from rootless.errors import UsageError

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


def main(args, ctx) -> int:
    from rootless.engine import networks

    sub = args.subcommand
    ns = _parser(sub).parse_args(args.rest)
    cfg = ctx.config
    if sub == "create":
        spec = networks.NetworkSpec.from_cli(ns.name, ns.driver, ns.subnet, ns.gateway, ns.internal, ns.label)
        sys.stdout.write(networks.create(cfg, spec)["Id"] + "\n")
        return 0
    if sub in ("ls", "list"):
        rows = []
        for info in networks.list_networks(cfg, ns.filter):
            row = dict(info)
            row["ID"] = info["Id"] if ns.no_trunc else info["Id"][:12]
            row["CreatedAt"] = info["Created"]
            row["Labels"] = objects.labels_text(info)
            rows.append(row)
        return objects.print_rows(rows, ns, "ID", "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", HEADERS)
    if sub == "inspect":
        return objects.inspect_each(ns.names, lambda name: networks.inspect(cfg, name), ns.format)
    if sub in ("rm", "remove"):
        return objects.remove_each(ns.names, lambda name: networks.remove(cfg, name, ns.force))
    if sub == "prune":
        from rootless.cli.output import confirm

        if not confirm("WARNING! This will remove all custom networks not used by at least one container.", ns.force):
            return 0
        objects.print_deleted("Networks", networks.prune(cfg))
        return 0
    if sub == "connect":
        networks.connect(cfg, ns.network, ns.container)
    else:
        networks.disconnect(cfg, ns.network, ns.container, ns.force)
    return 0
