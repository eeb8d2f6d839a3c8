"""Shared fixtures: how tests run the CLI, as the user the suite runs as.

The suite is run by tests/run: as `rltuser` (with subuid ranges), as `rltnosub` (without) for the
tests marked `nosubuid`, and as root for those marked `root_only`. Every test gets its own
data-root, config and runtime folders, so tests never see each other's state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
sys.path.insert(0, SRC)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from enginehelp import stop_warm_servers, warm_wanted  # noqa: E402

pytest_plugins = ["fixtures.registry", "fixtures.images", "fixtures.containers", "fixtures.seccomp_probe",
                  "fixtures.hostile_cfs", "fixtures.hostile_pull", "fixtures.hostile_rundir"]


def pytest_collection_modifyitems(config, items):
    """Root-only tests are skipped, with the reason, when not root (and vice versa)."""
    is_root = os.getuid() == 0
    for item in items:
        if "root_only" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root: tests/run runs these as root"))


@dataclass
class Result:
    argv: List[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


class Rootless:
    """Runs `rootless` (the built .pyz when ROOTLESS_TEST_PYZ is set, else the source tree)."""

    def __init__(self, env: Dict[str, str], home: str):
        self.env = env
        self.home = home
        pyz = os.environ.get("ROOTLESS_TEST_PYZ")
        self.base = [sys.executable, pyz] if pyz else [sys.executable, "-m", "rootless"]

    def argv(self, *args: str) -> List[str]:
        return self.base + [str(a) for a in args]

    def __call__(self, *args: str, input: Optional[bytes] = None, timeout: float = 120, check: bool = False,
                 env: Optional[Dict[str, str]] = None) -> Result:
        e = dict(self.env)
        if env:
            e.update(env)
        argv = self.argv(*args)
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        r = Result(argv, p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))
        if check and r.returncode != 0:
            raise AssertionError(f"command failed:\n{r}")
        return r

    def ok(self, *args: str, **kw) -> Result:
        kw["check"] = True
        return self(*args, **kw)

    @property
    def data_root(self) -> str:
        return os.path.join(self.home, ".local", "share", "rootless")

    def write_config(self, text: str) -> str:
        path = os.path.join(self.env["XDG_CONFIG_HOME"], "rootless", "daemon.toml")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def warm_dir(tmp_path_factory, cache_home):
    """One warm server for the whole session (each test has its own XDG_RUNTIME_DIR, where the
    server's socket would otherwise be): started before the first test so that every command of
    every test runs through it (not only those after it happens to be up), stopped at the end."""
    path = tmp_path_factory.mktemp("warm")
    os.chmod(path, 0o700)
    pyz = os.environ.get("ROOTLESS_TEST_PYZ")
    if pyz and warm_wanted():
        home = tmp_path_factory.mktemp("warmhome")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home), "LANG": "C.UTF-8",
               "XDG_CACHE_HOME": cache_home, "ROOTLESS_WARM_DIR": str(path), "ROOTLESS_WARM_IDLE": "120",
               "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share"),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": SRC}  # PYTHON* as test_env's: part of the server's key
        subprocess.run([sys.executable, pyz, "ps"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, timeout=60)
        import time

        deadline = time.monotonic() + 30
        while not any(n.endswith(".sock") for n in os.listdir(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
    yield str(path)
    stop_warm_servers(str(path))


@pytest.fixture
def test_env(tmp_path, cache_home, warm_dir) -> Dict[str, str]:
    """A clean environment for one test: its own HOME, XDG dirs and runtime dir."""
    home = tmp_path / "home"
    run = tmp_path / "run"
    home.mkdir()
    run.mkdir(mode=0o700)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(home),
        "USER": os.environ.get("USER", ""),
        "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": cache_home,
        "XDG_RUNTIME_DIR": str(run),
        "PYTHONPATH": SRC,
        "PYTHONDONTWRITEBYTECODE": "1",
        "ROOTLESS_WARM_DIR": warm_dir,
        "ROOTLESS_WARM_IDLE": "120",
    }
    if not warm_wanted():
        env["ROOTLESS_WARM"] = "0"
    return env


@pytest.fixture
def rl(test_env) -> Rootless:
    return Rootless(test_env, test_env["HOME"])


from fixtures.users import has_subuid  # noqa: E402,F401  (kept importable from conftest)
