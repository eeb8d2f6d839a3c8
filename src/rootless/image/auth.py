"""Registry credentials in docker's ``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker``).

``{"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}``; Docker Hub's key is
``https://index.docker.io/v1/``. Keys written by other tools with a scheme or a path
(``https://host/v1/``) are matched by their host, as docker's ``ConvertToHostname`` does.
``credHelpers``/``credsStore`` are asked through ``docker-credential-<name> get`` when configured.
The file is written mode 0600 with temp + fsync + rename, keeping every key we do not manage.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from rootless import paths, tools
from rootless.errors import RootlessError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def config_dir(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return env.get("DOCKER_CONFIG") or os.path.join(paths.home(env), ".docker")


def config_path(env: Optional[Mapping[str, str]] = None) -> str:
    return os.path.join(config_dir(env), "config.json")


def server_key(host: str) -> str:
    """The ``auths`` key docker uses for a registry host."""
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DOCKER_HUB_KEY
    return host


def hostname_of(key: str) -> str:
    """docker's ConvertToHostname: strip the scheme and any path."""
    k = key
    if k.startswith("http://"):
        k = k[7:]
    elif k.startswith("https://"):
        k = k[8:]
    return k.split("/", 1)[0]


def _load(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise RootlessError(f"read `{path}`: {e}", "fix or remove the file (it holds registry logins)")
    if not isinstance(doc, dict):
        raise RootlessError(f"read `{path}`: not a JSON object", "fix or remove the file")
    return doc


def _entry_for(auths: Dict[str, Any], host: str) -> Optional[Dict[str, Any]]:
    key = server_key(host)
    if isinstance(auths.get(key), dict):
        return auths[key]
    want = hostname_of(key)
    for k, v in auths.items():
        if isinstance(v, dict) and hostname_of(k) == want:
            return v
    return None


def _helper_get(helper: str, host: str) -> Optional[Tuple[str, str]]:
    name = f"docker-credential-{helper}"
    if tools.which(name) is None:
        return None
    try:
        res = tools.run([name, "get"], input=server_key(host).encode(), timeout=30)
    except RootlessError:
        return None
    try:
        doc = json.loads(res.stdout)
        return str(doc["Username"]), str(doc["Secret"])
    except (ValueError, KeyError, TypeError):
        return None


def get_credentials(host: str, env: Optional[Mapping[str, str]] = None) -> Optional[Tuple[str, str]]:
    """(username, password) for ``host``, or None."""
    doc = _load(config_path(env))
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict) and helpers.get(server_key(host)):
        got = _helper_get(str(helpers[server_key(host)]), host)
        if got:
            return got
    entry = _entry_for(doc.get("auths") or {}, host)
    if entry:
        if entry.get("auth"):
            try:
                raw = base64.b64decode(entry["auth"]).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise RootlessError(f"read `{config_path(env)}`: the `auth` of `{host}` is not base64 of user:password",
                                    f"log in again: `rootless login {host}`")
            user, sep, password = raw.partition(":")
            if sep:
                return user, password
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return _helper_get(store, host)
    return None


def store_credentials(host: str, username: str, password: str, env: Optional[Mapping[str, str]] = None) -> str:
    """Write the login into config.json (0600, atomic); returns the file's path."""
    path = config_path(env)
    doc = _load(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    # drop other spellings of the same host, keep docker's key
    for k in [k for k in auths if hostname_of(k) == hostname_of(server_key(host))]:
        del auths[k]
    auths[server_key(host)] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    doc["auths"] = auths
    _write(path, doc)
    return path


def remove_credentials(host: str, env: Optional[Mapping[str, str]] = None) -> bool:
    path = config_path(env)
    doc = _load(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    keys = [k for k in auths if hostname_of(k) == hostname_of(server_key(host))]
    if not keys:
        return False
    for k in keys:
        del auths[k]
    _write(path, doc)
    return True


def _write(path: str, doc: Dict[str, Any]) -> None:
    d = os.path.dirname(path)
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        paths.atomic_write(path, (json.dumps(doc, indent="\t") + "\n").encode(), 0o600)
        os.chmod(path, 0o600)
    except OSError as e:
        raise RootlessError(f"write `{path}`: {e.strerror}", "check the permissions of the directory (or DOCKER_CONFIG)")
