"""Networks through the engine: create, list, inspect, remove, prune, connect, disconnect.

The one way in to user-defined networks (network/usernet.py) for both faces. The predefined
networks are listed too: ``slirp4netns`` (the default; ``bridge`` is accepted as its alias by
--network, but it is listed under its real name because, unlike docker's bridge, its containers do
not reach each other), ``host`` and ``none``. Values are Docker's NetworkResource dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from rootless.errors import RootlessError, UsageError

Info = Dict[str, Any]


@dataclass(frozen=True)
class NetworkSpec:
    """A network to create (docker's NetworkCreateRequest), checked when made (``NetworkSpec.make``)."""

    name: str
    driver: str = "bridge"
    subnet: str = ""        # CIDR; empty: a free 10.89.N.0/24
    gateway: str = ""       # empty: the subnet's first address
    internal: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, name: str, driver: str = "bridge", subnet: str = "", gateway: str = "", internal: bool = False,
             labels: Optional[Mapping[str, str]] = None) -> NetworkSpec:
        if driver != "bridge":
            raise UsageError(f"use network driver `{driver}`: not supported", "use the bridge driver (the default)")
        return cls(name, driver, subnet, gateway, internal, dict(labels or {}))

    @classmethod
    def from_cli(cls, name: str, driver: str, subnet: str, gateway: str, internal: bool,
                 label_items: Sequence[str]) -> NetworkSpec:
        """From `network create`'s flags (``--label KEY=VALUE``: an empty key is refused)."""
        from rootless.network import usernet

        spec = cls.make(name, driver, subnet, gateway, internal)
        return cls(spec.name, spec.driver, spec.subnet, spec.gateway, spec.internal, usernet.parse_labels(label_items))


def create(config: Any, spec: NetworkSpec) -> Info:
    """Create the network (usernet checks the name, the subnet and overlaps); its inspect dict."""
    from rootless.network import usernet

    net = usernet.create(config.data_root, spec.name, subnet=spec.subnet, gateway=spec.gateway,
                         internal=spec.internal, labels=dict(spec.labels))
    from rootless.engine import events

    events.emit(config, "network", "create", net["Id"], {"name": net["Name"], "type": "bridge"})
    return usernet.inspect_dict(net)


def _all(config: Any) -> List[Info]:
    from rootless.network import usernet

    out = [usernet.predefined_dict(n, d) for n, d in usernet.PREDEFINED]
    return out + [usernet.inspect_dict(n) for n in usernet.load_all(config.data_root)]


def _filters():
    from rootless.engine import filters

    return {
        "name": lambda info, v: v in info["Name"],
        "id": lambda info, v: info["Id"].startswith(v),
        "driver": lambda info, v: info["Driver"] == v,
        "label": filters.has_label,
    }


def list_networks(config: Any, filter_items: Sequence[str] = ()) -> List[Info]:
    """The predefined networks then the user-defined ones that pass every ``--filter`` (name=, id=,
    driver=, label=), as inspect dicts."""
    from rootless.engine import filters

    parsed = filters.parse(
        filter_items, _filters(),
        unknown=lambda f, key: UsageError(f"parse filter `{f}`: unknown filter `{key}`",
                                          "use name=, id=, driver= or label="),
        no_value=lambda f: UsageError(f"parse filter `{f}`: expected key=value", "e.g. --filter name=mynet"),
    )
    return [info for info in _all(config) if filters.matches(info, parsed)]


def inspect(config: Any, name: str) -> Info:
    """A network by name (predefined ones too), or a user-defined one by id or id prefix."""
    from rootless.network import usernet

    for info in _all(config):
        if info["Name"] == name:
            return info
    n = usernet.find(config.data_root, name)
    if n is None:
        raise RootlessError(f"inspect network `{name}`: no such network")
    return usernet.inspect_dict(n)


def remove(config: Any, name: str, force: bool = False) -> Optional[str]:
    """Remove a user-defined network no container uses; what it removed (docker prints the
    argument), or None when ``force`` and there is no such network."""
    from rootless.network import usernet

    if name in dict(usernet.PREDEFINED) or name in usernet.RESERVED:
        raise RootlessError(f"remove network `{name}`: it is a predefined network", "it cannot be removed",
                            exit_code=1)
    if force and usernet.find(config.data_root, name) is None:
        return None
    from rootless.engine import events

    net_id = (usernet.find(config.data_root, name) or {}).get("Id") or name
    gone = usernet.remove(config.data_root, config.exec_root, name)
    events.emit(config, "network", "destroy", net_id, {"name": gone, "type": "bridge"})
    return gone


def prune(config: Any) -> List[str]:
    """Remove the user-defined networks no container uses; their names."""
    from rootless.network import usernet

    return usernet.prune(config.data_root, config.exec_root)


def _running_container(config: Any, ref: str) -> Dict[str, Any]:
    from rootless import state

    rec = state.Store(config.data_root).resolve(ref)
    s = rec.get("State") or {}
    if not (s.get("Running") and state.is_alive(s)):
        raise RootlessError(f"find container `{ref}`: it is not running",
                            "start it first; a stopped container joins its networks when it starts", exit_code=1)
    return rec


def connect(config: Any, network: str, container: str) -> None:
    """Join a running container to a user-defined network (its /etc/hosts follows)."""
    from rootless.network import usernet

    net = usernet.get(config.data_root, network)
    rec = _running_container(config, container)
    usernet.attach(config.data_root, config.exec_root, net["Id"], int(rec["State"]["Pid"]), container_id=rec["Id"],
                   name=(rec.get("Name") or "").lstrip("/"), hostname=(rec.get("Config") or {}).get("Hostname") or "",
                   hosts_path=rec.get("HostsPath") or "")
    from rootless.engine import events

    events.emit(config, "network", "connect", net["Id"], {"container": rec["Id"], "name": net["Name"], "type": "bridge"})


def disconnect(config: Any, network: str, container: str, force: bool = False) -> None:
    """Take a running container off a network it is connected to."""
    from rootless.network import usernet

    del force
    net = usernet.get(config.data_root, network)
    rec = _running_container(config, container)
    cname = (rec.get("Name") or "").lstrip("/")
    if rec["Id"] not in usernet.live_containers(net):
        raise RootlessError(f"disconnect container `{cname}` from network `{net['Name']}`: it is not connected",
                            "see `rootless network inspect " + net["Name"] + "`", exit_code=1)
    problems = usernet.release(config.data_root, config.exec_root, rec["Id"], net_ref=net["Id"])
    if problems:
        raise RootlessError(f"disconnect container `{cname}` from network `{net['Name']}`: {problems[0]}",
                            "see `rootless network inspect " + net["Name"] + "`")
    from rootless.engine import events

    events.emit(config, "network", "disconnect", net["Id"], {"container": rec["Id"], "name": net["Name"], "type": "bridge"})
