"""rootless update: change the resource limits (and restart policy) of containers.

A running container's cgroup is changed at once (CgroupHandle.update); the new limits are saved
in its record (Rootless.Limits, docker's HostConfig fields) under the container's lock, so a stopped
container gets them at its next start. A limit this host cannot enforce fails with the reason and
the fix (cgroups.Manager.check), never silently.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from rootless.errors import RootlessError, UsageError


def add_arguments(p) -> None:
    from rootless import limitflags

    limitflags.add_arguments(p)
    p.add_argument("--restart", default=None, metavar="string",
                   help="Restart policy to apply when a container exits (no, on-failure[:N], always, unless-stopped)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def update_one(config, ref: str, changes, restart: Optional[Dict[str, Any]]) -> str:
    """Apply ``changes`` (a Limits with the fields to change) and ``restart`` to container ``ref``."""
    from rootless import cgroups, engine, limits, state

    store = state.Store(config.data_root)
    rec = store.resolve(ref)
    name = (rec.get("Name") or rec["Id"]).lstrip("/")
    with store.lock(rec["Id"]):
        rec = store.load(rec["Id"])
        hc = rec.setdefault("HostConfig", {})
        own = rec.setdefault("Rootless", {})
        if restart is not None and restart["Name"] not in ("no", "") and hc.get("AutoRemove"):
            raise RootlessError(f"update container `{name}`: Restart policy cannot be updated because AutoRemove "
                                "is enabled for the container", "remove it and run it again without --rm")
        new = None
        if changes:
            old = limits.Limits.from_dict(own.get("Limits") or {})
            s = rec.get("State") or {}
            cg_data = own.get("Cgroup")
            if s.get("Running") and state.is_alive(s) and cg_data:
                handle = cgroups.CgroupHandle.from_json(cg_data)
                try:
                    new = handle.update(changes)
                except RootlessError as e:
                    raise RootlessError(f"update container `{name}`: {e.message}", e.hint) from None
                own["Cgroup"] = handle.to_json()
            else:
                # stopped (saved, applied at the next start), or running without a cgroup (a
                # cgroup v1 / hybrid host): either way, limits this host cannot enforce fail here
                try:
                    cgroups.Manager.check(changes)
                except RootlessError as e:
                    raise RootlessError(f"update container `{name}`: {e.message}", e.hint) from None
                if s.get("Running") and state.is_alive(s):
                    raise RootlessError(f"update container `{name}`: it runs without a cgroup of its own",
                                        "stop it, update it, then start it: a stopped container gets its new limits when it starts")
                new = old.merged(changes)
            own["Limits"] = new.to_dict()
            hc.update(engine._limit_fields(own["Limits"]))
        if restart is not None:
            hc["RestartPolicy"] = restart
        store.save(rec)
    return rec["Id"]


def main(args, ctx) -> int:
    from rootless import limitflags, limits
    from rootless.commands.stop import each
    from rootless.engine import containers

    if not limitflags.given(args) and args.restart is None:
        raise UsageError("you must provide one or more flags when using this command",
                         "for example `rootless update --memory 512m CONTAINER`")
    changes = limits.from_args(args)
    restart = containers.parse_restart(args.restart) if args.restart is not None else None
    return each(args.containers, lambda ref: update_one(ctx.config, ref, changes, restart))
