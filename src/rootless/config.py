"""daemon.toml: Docker's daemon.json keys, in TOML.

Read from ``$XDG_CONFIG_HOME/rootless/daemon.toml``; ``--config-file`` or ``$ROOTLESS_CONFIG``
override it. Unknown keys and wrong types are errors that name the key and the file, as dockerd's
are ("the following directives don't match any configuration option"). A missing default file is
not an error; a missing file named explicitly is.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from rootless import paths
from rootless.errors import ConfigError
from rootless.units import parse_size  # noqa: F401  (callers of config.parse_size)

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
STORAGE_DRIVERS = ("overlay2", "fuse-overlayfs", "vfs")
LOG_DRIVERS = ("json-file", "local", "none")

# --- validators: each takes (key, value) and returns the value or raises ValueError(reason) ----


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {_tname(v)}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_tname(v)}")
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {_tname(v)}")
    return v


def _pos_int(v: Any) -> int:
    v = _int(v)
    if v < 1:
        raise ValueError(f"expected a positive integer, got {v}")
    return v


def _str_list(v: Any) -> List[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"expected a list of strings, got {_tname(v)}")
    return list(v)


def _str_map(v: Any) -> Dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ValueError(f"expected a table of strings, got {_tname(v)}")
    return dict(v)


def _bool_map(v: Any) -> Dict[str, bool]:
    if not isinstance(v, dict) or not all(isinstance(x, bool) for x in v.values()):
        raise ValueError(f"expected a table of true/false values, got {_tname(v)}")
    return dict(v)


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        v = _str(v)
        if v not in choices:
            raise ValueError(f"`{v}` is not one of: {', '.join(choices)}")
        return v

    return check


def _size(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    parse_size(_str(v))
    return v


def _ulimits(v: Any) -> Dict[str, Dict[str, Any]]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of ulimits, got {_tname(v)}")
    out = {}
    for name, spec in v.items():
        if not isinstance(spec, dict):
            raise ValueError(f"ulimit `{name}`: expected a table with Name, Soft and Hard")
        soft, hard = spec.get("Soft"), spec.get("Hard")
        if not isinstance(soft, int) or not isinstance(hard, int):
            raise ValueError(f"ulimit `{name}`: Soft and Hard must be integers")
        if soft > hard and hard >= 0:
            raise ValueError(f"ulimit `{name}`: Soft {soft} is above Hard {hard}")
        out[name] = {"Name": spec.get("Name", name), "Soft": soft, "Hard": hard}
    return out


def _runtimes(v: Any) -> Dict[str, Dict[str, Any]]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of runtimes, got {_tname(v)}")
    out = {}
    for name, spec in v.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            raise ValueError(f"runtime `{name}`: expected a table with a `path` string")
        args = spec.get("runtimeArgs", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"runtime `{name}`: runtimeArgs must be a list of strings")
        extra = set(spec) - {"path", "runtimeArgs"}
        if extra:
            raise ValueError(f"runtime `{name}`: unknown key `{sorted(extra)[0]}`")
        out[name] = {"path": spec["path"], "runtimeArgs": list(args)}
    return out


def _cidr_or_host_list(v: Any) -> List[str]:
    return _str_list(v)


def _tname(v: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "a table"}.get(
        type(v), type(v).__name__
    )


# key -> (attribute, validator). Keys are daemon.json's, spelled the same.
SCHEMA: Dict[str, Tuple[str, Callable[[Any], Any]]] = {
    "data-root": ("data_root", _str),
    "exec-root": ("exec_root", _str),
    "storage-driver": ("storage_driver", _choice(*STORAGE_DRIVERS)),
    "storage-opts": ("storage_opts", _str_list),
    "log-driver": ("log_driver", _choice(*LOG_DRIVERS)),
    "log-opts": ("log_opts", _str_map),
    "log-level": ("log_level", _choice(*LOG_LEVELS)),
    "debug": ("debug", _bool),
    "registry-mirrors": ("registry_mirrors", _str_list),
    "insecure-registries": ("insecure_registries", _cidr_or_host_list),
    "max-concurrent-downloads": ("max_concurrent_downloads", _pos_int),
    "max-concurrent-uploads": ("max_concurrent_uploads", _pos_int),
    "max-download-attempts": ("max_download_attempts", _pos_int),
    "dns": ("dns", _str_list),
    "dns-search": ("dns_search", _str_list),
    "dns-opts": ("dns_opts", _str_list),
    "bip": ("bip", _str),
    "default-ulimits": ("default_ulimits", _ulimits),
    "default-runtime": ("default_runtime", _str),
    "runtimes": ("runtimes", _runtimes),
    "default-shm-size": ("default_shm_size", _size),
    "no-new-privileges": ("no_new_privileges", _bool),
    "seccomp-profile": ("seccomp_profile", _str),
    "init": ("init", _bool),
    "userland-proxy": ("userland_proxy", _bool),
    "hosts": ("hosts", _str_list),
    "features": ("features", _bool_map),
    "labels": ("labels", _str_list),
    # rootless's own keys (not in daemon.json), documented in rootless.toml(5)
    "network-mode": ("network_mode", _choice("slirp4netns", "helper", "none", "host")),
    "port-driver": ("port_driver", _choice("builtin", "slirp4netns")),
    "helper-socket": ("helper_socket", _str),
    "max-layer-size": ("max_layer_size", _size),
}


@dataclass(frozen=True)
class Config:
    """The effective configuration: file values over defaults."""

    source: Optional[str] = None  # the file read, or None when defaults only
    data_root: str = ""
    exec_root: str = ""
    exec_root_warning: Optional[str] = None
    storage_driver: str = ""  # "" = choose automatically
    storage_opts: List[str] = field(default_factory=list)
    log_driver: str = "json-file"
    log_opts: Dict[str, str] = field(default_factory=dict)
    log_level: str = "info"
    debug: bool = False
    registry_mirrors: List[str] = field(default_factory=list)
    insecure_registries: List[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    dns: List[str] = field(default_factory=list)
    dns_search: List[str] = field(default_factory=list)
    dns_opts: List[str] = field(default_factory=list)
    bip: str = "172.17.0.1/16"
    default_ulimits: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    default_runtime: str = "rootless"
    runtimes: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    default_shm_size: str = "64M"
    no_new_privileges: bool = False
    seccomp_profile: str = ""  # "" or "builtin": docker's default profile; "unconfined"; a JSON file
    init: bool = False
    userland_proxy: bool = True
    hosts: List[str] = field(default_factory=list)
    features: Dict[str, bool] = field(default_factory=dict)
    labels: List[str] = field(default_factory=list)
    network_mode: str = "slirp4netns"
    port_driver: str = "builtin"
    helper_socket: str = "/run/rootless-helper.sock"
    # The largest uncompressed tar a pulled layer may have ("0": no limit). 64 GiB is above any
    # real layer seen (the largest ML images have layers of 10-20 GB), and stops a decompression
    # bomb before it fills a common disk; inflating is bounded in memory and linear either way.
    max_layer_size: str = "64g"

    @property
    def max_layer_bytes(self) -> int:
        """max-layer-size in bytes; 0 means no limit."""
        return parse_size(str(self.max_layer_size))

    @property
    def debug_enabled(self) -> bool:
        return self.debug or self.log_level == "debug"

    def as_daemon_dict(self) -> Dict[str, Any]:
        """The effective values keyed by their daemon.json names."""
        return {key: getattr(self, attr) for key, (attr, _) in SCHEMA.items()}


def _load_toml(text: str, path: str) -> Dict[str, Any]:
    if not text.strip(" \t\n"):
        return {}  # an empty file: no need to import the parser (start-up time of `run`)
    try:
        import tomllib  # type: ignore[import-not-found]  # novermin
    except ImportError:  # Python < 3.11: the vendored tomli
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"read config file `{path}`: invalid TOML: {e}",
            "fix the syntax; `rootless config validate` checks a file",
        )
    except RecursionError:  # arrays or tables nested thousands deep: no real config is
        raise ConfigError(f"read config file `{path}`: invalid TOML: nested too deeply",
                          "fix the file; `rootless config validate` checks a file")


def validate(raw: Mapping[str, Any], path: str) -> Dict[str, Any]:
    """Check every key and type; return attribute -> value. Errors name the key and the file."""
    unknown = sorted(k for k in raw if k not in SCHEMA)
    if unknown:
        close = _suggest(unknown[0])
        raise ConfigError(
            f"read config file `{path}`: unknown key{'s' if len(unknown) > 1 else ''} "
            + ", ".join(f"`{k}`" for k in unknown),
            (f"did you mean `{close}`? " if close else "")
            + "see rootless.toml(5) for the keys (they mirror Docker's daemon.json)",
        )
    out: Dict[str, Any] = {}
    for key, value in raw.items():
        attr, check = SCHEMA[key]
        try:
            out[attr] = check(value)
        except ValueError as e:
            raise ConfigError(f"read config file `{path}`: key `{key}`: {e}", "see rootless.toml(5) for its type")
    if "log_opts" in out:
        _check_log_opts(out["log_opts"], path)
    return out


_LOG_HINT = 'log-opts values are strings, e.g. max-size = "10m", max-file = "3", compress = "true"'


def _check_log_opts(opts: Dict[str, str], path: str) -> None:
    for k, v in opts.items():
        if k == "max-size":
            try:
                parse_size(v)
            except ValueError as e:
                raise ConfigError(f"read config file `{path}`: log-opts `max-size`: {e}", _LOG_HINT)
        elif k == "max-file":
            if not v.isdigit() or int(v) < 1:
                raise ConfigError(f"read config file `{path}`: log-opts `max-file`: `{v}` is not a positive integer", _LOG_HINT)
        elif k == "compress":
            if v not in ("true", "false"):
                raise ConfigError(f"read config file `{path}`: log-opts `compress`: expected \"true\" or \"false\"", _LOG_HINT)
        elif k not in ("labels", "env", "tag", "mode", "max-buffer-size"):
            raise ConfigError(
                f"read config file `{path}`: log-opts: unknown option `{k}`",
                "json-file takes max-size, max-file, compress, labels, env, tag",
            )


def _suggest(key: str) -> Optional[str]:
    import difflib

    m = difflib.get_close_matches(key, list(SCHEMA), n=1, cutoff=0.6)
    return m[0] if m else None


def load(path: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Config:
    """The effective Config. ``path`` is --config-file; None means the env var or the default."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(paths.CONFIG_ENV))
    file_path = path or paths.default_config_file(env)
    values: Dict[str, Any] = {}
    source: Optional[str] = None
    try:
        with open(file_path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(
                f"read config file `{file_path}`: no such file",
                "check the path given with --config-file or ROOTLESS_CONFIG",
            )
        text = None
    except OSError as e:
        raise ConfigError(f"read config file `{file_path}`: {e.strerror}", "check its permissions")
    except UnicodeDecodeError:
        raise ConfigError(f"read config file `{file_path}`: not UTF-8 text", "save it as UTF-8")
    if text is not None:
        values = validate(_load_toml(text, file_path), file_path)
        source = file_path
    return finish(values, source, env)


def finish(values: Dict[str, Any], source: Optional[str], env: Mapping[str, str]) -> Config:
    """Fill in the defaults that depend on the environment and expand ``~``."""
    data_root = values.pop("data_root", None) or paths.default_data_root(env)
    exec_root_cfg = values.pop("exec_root", None)
    warning = None
    if exec_root_cfg:
        exec_root = exec_root_cfg
    else:
        er = paths.default_exec_root(env)
        exec_root, warning = er.path, er.warning
    # docker treats the loopback range as insecure by default (shown by `info`); so do we.
    insecure = list(values.pop("insecure_registries", []))
    if "127.0.0.0/8" not in insecure:
        insecure.insert(0, "127.0.0.0/8")
    return Config(
        source=source,
        insecure_registries=insecure,
        data_root=_expand(data_root, env),
        exec_root=_expand(exec_root, env),
        exec_root_warning=warning,
        **values,
    )


def _expand(p: str, env: Mapping[str, str]) -> str:
    if p == "~" or p.startswith("~/"):
        p = paths.home(env) + p[1:]
    return os.path.abspath(p)


# --- daemon.json import -------------------------------------------------------------------------


def import_daemon_json(text: str, path: str) -> str:
    """Convert daemon.json text to daemon.toml text, validating it the same way."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"read `{path}`: invalid JSON: {e}", "fix the file, then import it again")
    if not isinstance(raw, dict):
        raise ConfigError(f"read `{path}`: the top level must be a JSON object")
    validate(raw, path)
    return dumps_toml(raw)


def dumps_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for the value types our schema allows."""
    lines: List[str] = []
    tables: List[Tuple[str, Mapping[str, Any]]] = []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for name, table in tables:
        nested = {k: v for k, v in table.items() if isinstance(v, dict)}
        flat = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if flat or not nested:
            lines.append("")
            lines.append(f"[{_key(name)}]")
            for k, v in flat.items():
                lines.append(f"{_key(k)} = {_value(v)}")
        for k, v in nested.items():
            lines.append("")
            lines.append(f"[{_key(name)}.{_key(k)}]")
            for k2, v2 in v.items():
                lines.append(f"{_key(k2)} = {_value(v2)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise ConfigError(f"write TOML: cannot represent {type(v).__name__}")


def field_names() -> List[str]:
    return [f.name for f in fields(Config)]
