"""Test bundles: a busybox rootfs (busybox-static and its applet symlinks) and a config.json.

The config starts from `crun spec --rootless` (the reference runtime's own idea of a rootless
spec) with the terminal turned off; `make_spec` edits it per test.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from typing import Any, Dict, List, Optional

BUSYBOX = "/bin/busybox"
_BASE: Optional[Dict[str, Any]] = None


def base_spec() -> Dict[str, Any]:
    global _BASE
    if _BASE is None:
        import tempfile

        d = tempfile.mkdtemp(prefix="crunspec-")
        try:
            subprocess.run(["crun", "spec", "--rootless"], cwd=d, check=True, capture_output=True)
            with open(os.path.join(d, "config.json")) as f:
                _BASE = json.load(f)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        _BASE["process"]["terminal"] = False
        _BASE["root"]["readonly"] = False
        # docker's default capabilities, as the engine's specs have them
        from rootless.runtime import DEFAULT_CAPABILITIES

        caps = list(DEFAULT_CAPABILITIES)
        _BASE["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                                            "inheritable": [], "ambient": []}
    return copy.deepcopy(_BASE)


def make_rootfs(path: str) -> str:
    os.makedirs(os.path.join(path, "bin"))
    for d in ("etc", "tmp", "root", "home/user", "proc", "sys", "dev"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(path, "bin", a))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nuser:x:1000:\n")
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    return path


def make_spec(args: List[str], **changes: Any) -> Dict[str, Any]:
    spec = base_spec()
    spec["process"]["args"] = list(args)
    for key, value in changes.items():
        if key == "init":
            spec.setdefault("annotations", {})["io.rootless.init"] = "true" if value else "false"
        elif key == "readonly":
            spec["root"]["readonly"] = value
        elif key == "extra_mounts":
            spec["mounts"] += value
        elif key in ("user", "cwd", "env", "terminal", "rlimits", "capabilities", "consoleSize"):
            spec["process"][key] = value
        elif key == "hostname":
            spec["hostname"] = value
        elif key == "root_path":
            spec["root"]["path"] = value
        elif key == "namespaces":
            spec["linux"]["namespaces"] = value
        else:
            raise KeyError(key)
    return spec


def write_bundle(bundle: str, spec: Dict[str, Any]) -> str:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)
    return bundle

