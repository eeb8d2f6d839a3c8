"""The rootfs rootless gives a container equals the image's rootfs as Podman shows it (issue 4):
files, owners, modes, sizes, contents, symlink targets, mtimes, user xattrs and hardlink groups,
for every storage driver of ours (overlay2, fuse-overlayfs, vfs) against Podman's `vfs` and
`overlay` drivers.

Both sides pull `layered:latest` (tests/fixtures/images.py: 3 layers, gzip/none/zstd, whiteouts,
opaque dirs, hardlinks, other owners, a fifo, xattrs) from the same test registry, and both are
walked by tests/storage/rootfs_walk.py as root of their user namespace, so owners compare as
container-side ids (both map container 1.. onto rltuser's /etc/subuid range).

- Podman's side, without running a container (that needs a hybrid-cgroup workaround on these
  machines): `podman unshare sh -c 'podman image mount REF; walk; podman image umount REF'`.
  Podman gets a private HOME, XDG_CONFIG_HOME (~/.config; registries.conf: the test registry is
  insecure),
  XDG_RUNTIME_DIR (short: Podman wants its runroot path under 50 characters) and explicit
  --root/--runroot/--storage-driver; its pause process is stopped and its storage (subuid-owned
  files) removed at teardown.
- Our side: `rootless pull` and `rootless create` with `storage-driver` set, then the container's
  root as the storage driver mounts it (its rootfs plan, applied in a user + mount namespace, as
  `rootless cp` reads a stopped container: rootfs_walk.describe_plan), walked from inside.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List

import pytest
import rootfs_walk
from rootfs_walk import diff_trees, from_json

PODMAN = shutil.which("podman")
pytestmark = pytest.mark.skipif(PODMAN is None, reason="podman is not installed (tests/setup-host.sh installs it)")

PODMAN_DRIVERS = ("vfs", "overlay")
OUR_DRIVERS = ("overlay2", "fuse-overlayfs", "vfs")
WALKER = os.path.abspath(rootfs_walk.__file__)


@dataclass
class Podman:
    """A private Podman: its own HOME, config, runtime dir and one storage root per driver."""

    base: str  # HOME, XDG_CONFIG_HOME, storage roots
    run: str  # XDG_RUNTIME_DIR and the runroots (short path, under /tmp)
    env: Dict[str, str]

    def flags(self, driver: str) -> List[str]:
        return ["--root", os.path.join(self.base, "storage", driver),
                "--runroot", os.path.join(self.run, driver), "--storage-driver", driver]

    def __call__(self, driver: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = [str(PODMAN), *self.flags(driver), *args]
        p = subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        assert p.returncode == 0, f"$ {shlex.join(argv)}\nexit {p.returncode}\n{p.stderr}"
        return p

    def pause_pid(self) -> int:
        try:
            with open(os.path.join(self.run, "libpod", "tmp", "pause.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0


def stop_podman(pm: Podman) -> None:
    """Remove every driver's storage (as root of Podman's user namespace), stop the pause process."""
    for driver in PODMAN_DRIVERS:
        root = os.path.join(pm.base, "storage", driver)
        argv = [str(PODMAN), *pm.flags(driver)]
        subprocess.run(argv + ["system", "reset", "-f"], env=pm.env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        if os.path.lexists(root):
            subprocess.run(argv + ["unshare", "rm", "-rf", root], env=pm.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    pid = pm.pause_pid()
    if pid > 0:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                # a zombie when this process is its (sub)reaper; else init reaps it
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                if not os.path.exists(f"/proc/{pid}"):
                    break
            time.sleep(0.02)
    shutil.rmtree(pm.run, ignore_errors=True)


@pytest.fixture(scope="module")
def podman(tmp_path_factory, registry):
    base = str(tmp_path_factory.mktemp("podman"))
    run = tempfile.mkdtemp(prefix="rl-podman-", dir="/tmp")  # 0700; the runroots live here (< 50 chars)
    home = os.path.join(base, "home")
    config = os.path.join(home, ".config")
    os.makedirs(os.path.join(config, "containers"))
    with open(os.path.join(config, "containers", "registries.conf"), "w") as f:
        f.write(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": home,
        "USER": os.environ.get("USER", ""),
        "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": config,
        "XDG_DATA_HOME": os.path.join(home, ".local", "share"),
        "XDG_RUNTIME_DIR": run,
        "TMPDIR": run,
    }
    pm = Podman(base, run, env)
    try:
        yield pm
    finally:
        stop_podman(pm)


def podman_tree(pm: Podman, driver: str, ref: str) -> Dict[str, tuple]:
    """Pull `ref` with Podman's `driver`, mount the image in its user namespace and walk it there."""
    pm(driver, "pull", "--quiet", ref)
    podman = shlex.join([str(PODMAN), *pm.flags(driver)])
    script = (
        "set -e\n"
        f"m=$({podman} image mount {shlex.quote(ref)})\n"
        f"trap '{podman} image umount {shlex.quote(ref)} >/dev/null' EXIT\n"
        f"{shlex.quote(sys.executable)} {shlex.quote(WALKER)} \"$m\"\n"
    )
    p = pm(driver, "unshare", "sh", "-c", script)
    return from_json(p.stdout)


@pytest.fixture(scope="module")
def podman_trees(podman, layered_image) -> Dict[str, Dict[str, tuple]]:
    return {d: podman_tree(podman, d, layered_image.ref) for d in PODMAN_DRIVERS}


def our_tree(rl, driver: str, ref: str) -> Dict[str, tuple]:
    """`rootless pull` + `create` with `driver`; the stopped container's root, walked from inside."""
    from rootless import config as cfg
    from rootless import idmap
    from rootless import state as st
    from rootless.engine import containerfs
    from rootless.errors import RootlessError
    from rootless.runtime import run_in_userns
    from rootless.storage import select
    from rootless.storage.base import remove_tree

    rl.write_config(f'storage-driver = "{driver}"\n')
    conf = cfg.load(env=rl.env)
    try:
        select.choose(conf)
    except RootlessError as e:
        pytest.skip(f"storage driver {driver} is not usable here: {e.message}")
    try:
        rl.ok("pull", "--quiet", ref)
        cid = rl.ok("create", "--name", "walk", ref).stdout.strip()
        rec = st.Store(conf.data_root).load(cid)
        assert rec["Driver"] == driver
        drv, layers, ids = containerfs._layers_and_driver(conf, rec)
        tree = rootfs_walk.from_json(run_in_userns(rootfs_walk.describe_plan_json,
                                                   drv.prepare(rec["Id"], layers, volatile=False), "/",
                                                   ids=ids, mount_ns=True))
        rl.ok("rm", "walk")
        return tree
    finally:
        remove_tree(conf.data_root, idmap.load())  # layers hold subuid-owned files


def test_podman_drivers_agree(podman_trees):
    """Podman's own two drivers give the same tree (else the reference itself is in doubt)."""
    diffs = diff_trees(podman_trees["vfs"], podman_trees["overlay"], "podman vfs", "podman overlay")
    assert not diffs, "\n".join(diffs)
    assert len(podman_trees["vfs"]) > 40


@pytest.mark.parametrize("driver", OUR_DRIVERS)
def test_rootfs_equals_podmans(rl, layered_image, podman_trees, driver):
    ours = our_tree(rl, driver, layered_image.ref)
    diffs: List[str] = []
    for pdriver, theirs in podman_trees.items():
        diffs += diff_trees(ours, theirs, f"rootless {driver}", f"podman {pdriver}")
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs)
    # the walk saw what the image holds (not an empty mountpoint)
    assert ours["/data/hl-a"][9] == ("/data/hl-a", "/data/hl-b")
    assert ours["/data/owned-12345"][2:4] == (12345, 12345)
    assert ours["/data/xattr-file"][8] == (("user.test", b"hello"),)
