"""rootless create: make a container from an image without starting it (the flags `run` shares)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Tuple

from rootless.errors import RootlessError, UsageError


def add_common(p) -> None:
    """The container flags `create` and `run` share (docker's names and short options)."""
    # docker uses -h for --hostname in run/create: take it from --help (which stays)
    p.conflict_handler = "resolve"
    for group in getattr(p, "_action_groups", []):  # argparse copies the handler into its groups
        group.conflict_handler = "resolve"
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    p.add_argument("--name", default="", help="Assign a name to the container")
    p.add_argument("-e", "--env", action="append", default=[], metavar="list",
                   help="Set environment variables (KEY=VALUE, or KEY to take it from this environment)")
    p.add_argument("--env-file", action="append", default=[], metavar="list", help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", default="", metavar="string", help="Working directory inside the container")
    p.add_argument("-u", "--user", default="", metavar="string", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--entrypoint", default=None, metavar="string", help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("-h", "--hostname", default="", metavar="string", help="Container host name")
    p.add_argument("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    p.add_argument("--tmpfs", action="append", default=[], metavar="list", help="Mount a tmpfs directory (PATH[:OPTIONS])")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--init", action="store_true", default=None,
                   help="Run an init inside the container that forwards signals and reaps processes")
    p.add_argument("--shm-size", default=None, metavar="bytes", help="Size of /dev/shm (default 64m)")
    p.add_argument("--ulimit", action="append", default=[], metavar="ulimit", help="Ulimit options (NAME=SOFT[:HARD])")
    p.add_argument("--cap-add", action="append", default=[], metavar="list", help="Add Linux capabilities")
    p.add_argument("--cap-drop", action="append", default=[], metavar="list", help="Drop Linux capabilities")
    p.add_argument("--privileged", action="store_true",
                   help="Give every capability (within the container's user namespace only)")
    p.add_argument("--security-opt", action="append", default=[], metavar="list",
                   help="Security options (no-new-privileges[:true|false], seccomp=unconfined|PROFILE.json)")
    p.add_argument("--network", "--net", default=None, metavar="network",
                   help="Connect the container to a network: slirp4netns (default; options after a colon), "
                        "none (loopback only), host, helper (the root helper's bridge) or container:NAME")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="list",
                   help="Publish a container's port(s) to the host ([ip:]hostport:ctrport[/tcp|udp])")
    p.add_argument("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    from rootless import limitflags

    limitflags.add_arguments(p)
    p.add_argument("--pull", default="missing", choices=("missing", "always", "never"),
                   help="Pull image before running (missing, always, never)")
    p.add_argument("--platform", default=None, metavar="string", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the pull output")
    p.add_argument("-l", "--label", action="append", default=[], metavar="list", help="Set meta data on a container")
    p.add_argument("--dns", action="append", default=[], metavar="list", help="Set custom DNS servers")
    p.add_argument("--dns-search", action="append", default=[], metavar="list", help="Set custom DNS search domains")
    p.add_argument("--dns-option", action="append", default=[], metavar="list", help="Set DNS options")
    p.add_argument("--add-host", action="append", default=[], metavar="list", help="Add a custom host-to-IP mapping (host:ip)")
    p.add_argument("--runtime", default="", metavar="string", help="Runtime to use for this container")
    p.add_argument("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    from rootless.engine import hostflags

    hostflags.add_flags(p)  # --restart, --log-driver, --log-opt, -v, --mount, --volumes-from
    p.add_argument("image", help="The image to create the container from")
    p.add_argument("command", nargs=argparse.REMAINDER, help="The command and its arguments")


def add_arguments(p) -> None:
    add_common(p)


def _env_file(path: str) -> List[str]:
    """docker's --env-file: KEY=VALUE lines, `#` comments, a bare KEY takes this environment's value."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"read env file `{path}`: {e.strerror}", "check the path given to --env-file")
    out = []
    for line in lines:
        s = line.lstrip()
        if not s or s.startswith("#"):
            continue
        out += _env_item(s)
    return out


def _env_item(item: str) -> List[str]:
    key, sep, _ = item.partition("=")
    if not key:
        raise UsageError(f"invalid environment variable `{item}`", "use KEY=VALUE or KEY")
    if sep:
        return [item]
    val = os.environ.get(key)
    return [f"{key}={val}"] if val is not None else []


def _security_opts(items: List[str], default: bool) -> Tuple[bool, str]:
    """(no-new-privileges, seccomp) from --security-opt; seccomp is "" (the config's or the
    builtin profile), "unconfined", "builtin", or the profile file's JSON (docker keeps it so)."""
    nnp = default
    seccomp = ""
    for s in items:
        k, sep, v = s.replace("=", ":", 1).partition(":")
        if k == "no-new-privileges":
            if v in ("", "true"):
                nnp = True
            elif v == "false":
                nnp = False
            else:
                raise UsageError(f"invalid --security-opt `{s}`", "use no-new-privileges[:true|false]")
        elif k == "seccomp":
            if not v:
                raise UsageError(f"invalid --security-opt `{s}`", "use seccomp=unconfined or seccomp=PROFILE.json")
            from rootless.oci import seccomp as osec

            seccomp = osec.security_opt(v)  # reads and checks the file now: ProfileError (error:/hint:)
        else:
            raise UsageError(f"use --security-opt `{s}`: not supported",
                             "rootless supports no-new-privileges and seccomp=unconfined|PROFILE.json")
    return nnp, seccomp


def _labels(items: List[str]) -> Tuple[Tuple[str, str], ...]:
    out = []
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise UsageError(f"invalid label `{item}`", "use KEY=VALUE")
        out.append((k, v))
    return tuple(out)


def build_options(args, config, auto_remove: Optional[bool] = None):
    """argparse namespace + config defaults -> engine.CreateOptions."""
    from rootless.engine import CreateOptions, hostflags
    from rootless.oci import spec as ocispec
    from rootless.units import parse_size

    env: List[str] = []
    for path in args.env_file:
        env += _env_file(path)
    for item in args.env:
        env += _env_item(item)
    try:
        shm = parse_size(args.shm_size if args.shm_size is not None else config.default_shm_size)
        ulimits = {name: ocispec.Ulimit(name, int(u["Soft"]), int(u["Hard"]))
                   for name, u in (config.default_ulimits or {}).items()}
        for text in args.ulimit:
            u = ocispec.parse_ulimit(text)
            ulimits[u.name] = u
        tmpfs = tuple(ocispec.parse_tmpfs(t) for t in args.tmpfs)
        for c in args.cap_add + args.cap_drop:
            ocispec.normalize_cap(c)
    except ValueError as e:  # SpecError is a ValueError, and so are parse_size's
        raise UsageError(str(e), "see `rootless run --help`")
    if shm <= 0:
        raise UsageError(f"invalid --shm-size `{args.shm_size}`", "give a positive size such as 64m")
    from rootless import limitflags

    net_text = args.network or config.network_mode
    if net_text not in ("none", "host") or args.publish or args.publish_all:
        from rootless import network  # not for none/host (start-up time)

        mode = network.parse_mode(net_text, data_root=config.data_root)  # UsageError when bad
        if args.publish or args.publish_all:
            if mode.kind in ("none", "host", "container"):
                raise UsageError(f"publish ports with --network {mode}: the container has no network of its own "
                                 "to publish from", "drop -p/-P, or use the default network (slirp4netns)")
            network.parse_ports(args.publish)  # check the syntax now
    lim = None
    if limitflags.given(args):
        from rootless import limits

        lim = limits.from_args(args)
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = (args.entrypoint,) if args.entrypoint else ()
    init = args.init if args.init is not None else config.init
    nnp, seccomp = _security_opts(args.security_opt, config.no_new_privileges)
    run = ocispec.RunOptions(
        cmd=tuple(args.command),
        entrypoint=entrypoint,
        env=tuple(env),
        workdir=args.workdir,
        hostname=args.hostname,
        read_only=args.read_only,
        tmpfs=tmpfs,
        tty=args.tty,
        stdin_open=args.interactive,
        init=bool(init),
        shm_size=shm,
        ulimits=tuple(ulimits.values()),
        cap_add=tuple(args.cap_add),
        cap_drop=tuple(args.cap_drop),
        privileged=args.privileged,
        no_new_privileges=nnp,
        network="host" if net_text == "host" else "private",
        labels=_labels(args.label),
        seccomp=seccomp,
    )
    return CreateOptions(
        image=args.image,
        run=run,
        user=args.user,
        name=args.name,
        auto_remove=args.rm if auto_remove is None else auto_remove,
        pull=args.pull,
        platform=args.platform,
        quiet_pull=args.quiet,
        dns=tuple(args.dns),
        dns_search=tuple(args.dns_search),
        dns_options=tuple(args.dns_option),
        add_hosts=tuple(args.add_host),
        runtime=args.runtime,
        network=args.network or "",
        publish=tuple(args.publish),
        publish_all=args.publish_all,
        limits=lim.to_dict() if lim else {},
        host_extra=hostflags.host_config_extras(args, config),
    )


def main(args, ctx) -> int:
    from rootless import engine

    opts = build_options(args, ctx.config)
    rec = engine.create(ctx.config, opts, out=sys.stderr, reporter=ctx)
    sys.stdout.write(rec["Id"] + "\n")
    return 0


__all__ = ["add_common", "add_arguments", "build_options", "main", "RootlessError"]
