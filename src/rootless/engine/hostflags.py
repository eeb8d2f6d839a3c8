"""docker's HostConfig flags of `run` and `create`: --restart, --log-driver, --log-opt, -v, --mount,
--volumes-from; the parser's flags and their checking.

Apart from rootless.engine.containers (the lifecycle beyond create/start) so that building and checking
the `run` command line does not import it (start-up time).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from rootless.config import LOG_DRIVERS
from rootless.errors import RootlessError, UsageError

RESTART_NAMES = ("no", "always", "on-failure", "unless-stopped")
LOG_OPTS = ("max-size", "max-file", "compress", "labels", "env", "tag", "mode", "max-buffer-size")


def add_flags(p) -> None:
    """The flags of this issue that `create` and `run` share (docker's names)."""
    p.add_argument("--restart", default="no", metavar="string",
                   help="Restart policy to apply when a container exits (no, on-failure[:N], always, unless-stopped)")
    p.add_argument("--log-driver", default="", metavar="string", help="Logging driver for the container (json-file, local, none)")
    p.add_argument("--log-opt", action="append", default=[], metavar="list", help="Log driver options (max-size, max-file, compress)")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="list", help="Bind mount a volume (SRC:DST[:ro|rw])")
    p.add_argument("--mount", action="append", default=[], metavar="mount",
                   help="Attach a filesystem mount (type=bind|volume|tmpfs,source=...,target=...[,readonly])")
    p.add_argument("--volumes-from", action="append", default=[], metavar="list",
                   help="Mount volumes from the specified container(s)")


def parse_restart(text: str) -> Dict[str, Any]:
    name, _, count = (text or "no").partition(":")
    if name not in RESTART_NAMES:
        raise UsageError(f"invalid restart policy `{text}`", "use no, always, unless-stopped or on-failure[:N]")
    n = 0
    if count:
        if name != "on-failure" or not count.isdigit():
            raise UsageError(f"invalid restart policy `{text}`: only on-failure takes a count",
                             "for example --restart on-failure:3")
        n = int(count)
    return {"Name": name, "MaximumRetryCount": n}


def parse_log_config(driver: str, opts: List[str], config) -> Dict[str, Any]:
    """LogConfig {Type, Config}: --log-driver/--log-opt, else the config's log-driver/log-opts."""
    kind = driver or getattr(config, "log_driver", "") or "json-file"
    if kind not in LOG_DRIVERS:
        raise UsageError(f"use log driver `{kind}`: not supported", f"use one of {', '.join(LOG_DRIVERS)}")
    if driver or opts:
        cfg: Dict[str, str] = {}
    else:
        cfg = dict(getattr(config, "log_opts", None) or {})
    for item in opts:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"invalid --log-opt `{item}`", "use KEY=VALUE, e.g. max-size=10m")
        if k not in LOG_OPTS:
            raise UsageError(f"use --log-opt `{k}`: unknown log option for `{kind}`",
                             "json-file takes max-size, max-file and compress")
        cfg[k] = v
    if kind == "none" and cfg:
        raise UsageError("use --log-opt with log driver `none`: it takes no options", "drop --log-opt")
    try:
        if cfg:  # (rootless.logs is not imported on run's hot path otherwise)
            from rootless.logs import LogOptions

            LogOptions.from_opts(cfg)
    except (ValueError, RootlessError) as e:
        raise UsageError(f"invalid log options {cfg}: {e}", 'for example --log-opt max-size=10m --log-opt max-file=3')
    return {"Type": kind, "Config": cfg}


def host_config_extras(args, config) -> Tuple[Tuple[str, Any], ...]:
    """What the flags of add_flags put in HostConfig, validated (volumes are checked in volumes.py)."""
    restart = parse_restart(getattr(args, "restart", "no"))
    if restart["Name"] != "no" and getattr(args, "rm", False):
        raise UsageError("use --restart with --rm: conflicting options", "drop one of them")
    out: Dict[str, Any] = {
        "RestartPolicy": restart,
        "LogConfig": parse_log_config(getattr(args, "log_driver", ""), getattr(args, "log_opt", []), config),
    }
    binds, mounts = [], []
    if getattr(args, "volume", []) or getattr(args, "mount", []):
        from rootless.engine import volumes  # only when asked (start-up time of `run`)

        binds, mounts = volumes.parse_cli(getattr(args, "volume", []), getattr(args, "mount", []))
    out["Binds"] = binds or None
    out["Mounts"] = mounts or None
    out["VolumesFrom"] = list(getattr(args, "volumes_from", [])) or None
    return tuple(out.items())
