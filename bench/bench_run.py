"""`rootless run --rm --network none busybox true` of a local image, against `crun run` of a bundle and
`podman run --rm --network none` (and a row with our default network, slirp4netns).

    python3 bench/bench_run.py            # median of 20 each, printed as ratios

Self-contained: a busybox image is built from the host's busybox-static (tarfile) straight into a
private data-root (no registry, no network), in $ROOTLESS_BENCH_HOME or a temp dir. crun runs the
bundle that rootless generated for the same image (vfs rootfs), inside one long-lived user
namespace (started with util-linux `unshare`, with the hybrid-cgroup mount hidden as Podman's
users do on these machines), so that only `crun run` itself is timed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BUSYBOX = "/bin/busybox"
REF = "docker.io/library/busybox:latest"
N = int(os.environ.get("ROOTLESS_BENCH_N", "20"))


def busybox_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, 1700000000
            t.addfile(ti)
        data = open(BUSYBOX, "rb").read()
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode, ti.mtime = len(data), 0o755, 1700000000
        t.addfile(ti, io.BytesIO(data))
        applets = subprocess.run([BUSYBOX, "--list"], stdout=subprocess.PIPE, check=True).stdout.decode().split()
        for a in sorted(set(applets)):
            if "/" in a or a == "busybox":
                continue
            ti = tarfile.TarInfo(f"bin/{a}")
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.LNKTYPE, "bin/busybox", 0o755, 1700000000
            t.addfile(ti)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            b = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(b), 1700000000
            t.addfile(ti, io.BytesIO(b))
    return buf.getvalue()


def make_image(env) -> None:
    """Put the busybox image into the store of the data-root ``env`` points at (the store's own API)."""
    code = f"""
import hashlib, json, sys
from rootless import config
from rootless.image.store import ImageStore, LayerRecord
tar = open(sys.argv[1], "rb").read()
diff = "sha256:" + hashlib.sha256(tar).hexdigest()
cfg = {{"architecture": "amd64", "os": "linux", "config": {{"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}},
       "rootfs": {{"type": "layers", "diff_ids": [diff]}}}}
store = ImageStore(config.load().data_root).ensure()
ld = store.put_blob(tar)
cd = store.put_blob(json.dumps(cfg, sort_keys=True).encode())
store.add_image(cd, [LayerRecord(ld, "application/vnd.oci.image.layer.v1.tar", len(tar), diff, len(tar))])
store.tag(cd, "{REF}")
"""
    with tempfile.NamedTemporaryFile(suffix=".tar") as f:
        f.write(busybox_tar())
        f.flush()
        subprocess.run([sys.executable, "-c", code, f.name], env=env, check=True)


def home_env(home: str, extra_config: str = "") -> dict:
    e = common.env_for_source()
    e.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"), XDG_DATA_HOME=os.path.join(home, ".local", "share"))
    e.pop("ROOTLESS_CONFIG", None)
    e.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: the unpacked .pyz caches its bytecode
    os.makedirs(os.path.join(home, ".config", "rootless"), exist_ok=True)
    with open(os.path.join(home, ".config", "rootless", "daemon.toml"), "w") as f:
        f.write(extra_config)
    return e


CRUN_ONCE = r"""
import json, subprocess, sys, time
argv = json.loads(sys.argv[1])
t0 = time.perf_counter()
p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if p.returncode != 0:
    sys.exit("crun failed: " + p.stderr.decode()[-300:])
print(time.perf_counter() - t0)
"""


def time_once(argv, env=None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.decode()[-300:]}")
    return dt


class Crun:
    """`crun run` of the bundle rootless generated. Only `crun run` itself is timed: on a hybrid-cgroup
    host the wrapper (a user namespace hiding the cgroup2 mount) is started first and not counted."""

    def __init__(self, bundle_src: str, work: str):
        sys.path.insert(0, os.path.join(common.ROOT, "src"))
        from rootless import idmap
        from rootless.oci import bundle as ob

        self.ids = idmap.load()
        spec = ob.read(bundle_src)
        spec["process"]["args"] = ["true"]
        spec["process"]["terminal"] = False
        self.bundle = os.path.join(work, "crun-bundle")
        self.wrap = ob.cgroup2_blocks_crun()
        ob.write(self.bundle, ob.nested_spec(spec, self.ids) if self.wrap else spec)
        self.root = os.path.join(work, "crun-state")
        self.ob = ob
        self.i = 0

    def once(self) -> float:
        self.i += 1
        argv = [shutil.which("crun"), "--root", self.root, "run", "--bundle", self.bundle, f"bench{self.i}"]
        loop = [sys.executable, "-c", CRUN_ONCE, json.dumps(argv)]
        if self.wrap:
            loop = self.ob.wrapped_argv(loop, self.ids)
            loop[0] = shutil.which(loop[0])
        p = subprocess.run(loop, stdout=subprocess.PIPE, check=True)
        return float(p.stdout)


class Podman:
    """`podman run --rm` of the same busybox (imported from the same tar) in a private store.

    Podman 4.3 with crun 1.8 refuses hybrid cgroups; as ../shared/notes says, the cgroup2 mount is
    hidden inside Podman's own rootless mount namespace (`podman unshare mount -t tmpfs ...`).
    Its pause process is stopped by ``close()`` (it lives in our private XDG_RUNTIME_DIR).
    """

    def __init__(self, work: str, driver: str):
        home = os.path.join(work, "podman-" + driver)
        self.run_dir = os.path.join(home, "run")
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        self.env = dict(os.environ, HOME=home, XDG_RUNTIME_DIR=self.run_dir)
        self.env.pop("XDG_CONFIG_HOME", None)
        self.env.pop("XDG_DATA_HOME", None)
        self.short = tempfile.mkdtemp(prefix="rlpm-", dir="/tmp")  # podman wants a runroot of < 50 characters
        base = ["podman", "--root", os.path.join(home, "root"), "--runroot", os.path.join(self.short, "r"),
                "--storage-driver", driver]
        tar = os.path.join(work, "busybox.tar")
        with open(tar, "wb") as f:
            f.write(busybox_tar())
        img = "localhost/rootless-bench-busybox"
        self._setup(base + ["import", "-q", tar, img])
        if os.path.isdir("/sys/fs/cgroup/unified"):
            self._setup(base + ["unshare", "mount", "-t", "tmpfs", "-o", "size=4k,mode=0555", "none",
                                "/sys/fs/cgroup/unified"])
        self.argv = base + ["run", "--rm", "--network", "none", img, "/bin/true"]

    def _setup(self, argv) -> None:
        p = subprocess.run(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:6])} ...: {p.stderr.decode(errors='replace').strip()[-300:]}")

    def once(self) -> float:
        return time_once(self.argv, self.env)

    def close(self) -> None:
        try:
            with open(os.path.join(self.run_dir, "libpod", "tmp", "pause.pid")) as f:
                os.kill(int(f.read().strip()), 15)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.short, ignore_errors=True)


def main() -> int:
    if not os.path.exists(BUSYBOX):
        print(f"bench run: needs {BUSYBOX} (apt-get install busybox-static)", file=sys.stderr)
        return 1
    base = common.rootless_argv()
    work = os.environ.get("ROOTLESS_BENCH_HOME") or tempfile.mkdtemp(prefix="rootless-bench-run-")
    candidates = {}  # name -> a function timing one run
    only = os.environ.get("ROOTLESS_BENCH_ONLY")  # a regular expression: time only the candidates it finds
    warm_envs = []  # the warm servers the runs start are stopped at the end
    notes = []
    for driver in ("", "vfs"):
        home = os.path.join(work, driver or "auto")
        env = home_env(home, f'storage-driver = "{driver}"\n' if driver else "")
        make_image(env)
        subprocess.run(base + ["run", "--rm", REF, "true"], env=env, check=True)  # unpack the layer once
        label = f"rootless run --rm busybox true ({driver or 'automatic driver'})"
        candidates[label] = (lambda e=env: time_once(base + ["run", "--rm", "--network", "none", REF, "true"], e))
        if not driver:
            # every command in its own Python, as before the warm server (rootless/warm.py)
            label = "rootless run --rm busybox true (automatic driver, cold: ROOTLESS_WARM=0)"
            cold_env = dict(env, ROOTLESS_WARM="0")
            candidates[label] = (lambda e=cold_env: time_once(base + ["run", "--rm", "--network", "none", REF, "true"], e))
            label = "rootless run --rm busybox true (automatic driver, cold: ROOTLESS_WARM=0, seccomp=unconfined)"
            candidates[label] = (lambda e=cold_env: time_once(base + ["run", "--rm", "--network", "none", "--security-opt",
                                                                      "seccomp=unconfined", REF, "true"], e))
            warm_envs.append(env)
            # what the default seccomp filter costs (compiled once, then read from the cache)
            label = "rootless run --rm busybox true (automatic driver, seccomp=unconfined)"
            candidates[label] = (lambda e=env: time_once(base + ["run", "--rm", "--network", "none", "--security-opt",
                                                                 "seccomp=unconfined", REF, "true"], e))
        if not driver and base[0] == sys.executable:
            # Python's `site` runs every .pth file of the host's dist-packages at start-up (on the
            # machines we develop on, one imports certifi: ~20 ms); the .pyz needs none of them
            label = "rootless run --rm busybox true (automatic driver, python3 -S)"
            candidates[label] = (lambda e=env: time_once([base[0], "-S"] + base[1:] + ["run", "--rm", "--network", "none", REF, "true"], e))
            # the default network: slirp4netns started and stopped for every container
            label = "rootless run --rm busybox true (automatic driver, slirp4netns)"
            candidates[label] = (lambda e=env: time_once(base + ["run", "--rm", REF, "true"], e))
        if driver == "vfs":
            subprocess.run(base + ["rm", "-f", "benchc"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cid = subprocess.run(base + ["create", "--name", "benchc", REF, "true"], env=env, check=True,
                                 stdout=subprocess.PIPE).stdout.decode().strip()
            subprocess.run(base + ["start", "-a", "benchc"], env=env, check=True)  # writes its bundle
            bundle_src = os.path.join(home, ".local", "share", "rootless", "containers", cid, "bundle")
    import re

    def wanted(label: str) -> bool:
        return not only or re.search(only, label) is not None

    crun = Crun(bundle_src, work) if common.have("crun") and wanted("crun run") else None
    if crun:
        candidates["crun run (the same bundle, vfs rootfs)"] = crun.once
    podmans = []
    if common.have("podman") and wanted("podman run"):
        for drv in ("overlay", "vfs"):
            try:
                pm = Podman(work, drv)
                pm.once()
            except (RuntimeError, subprocess.CalledProcessError) as e:
                notes.append(f"  podman ({drv}): failed: {str(e)[:200]}")
                continue
            podmans.append(pm)
            candidates[f"podman run --rm busybox true ({drv})"] = pm.once
    else:
        notes.append("  podman: not installed here (no comparison)")
    candidates = {k: v for k, v in candidates.items() if wanted(k)}
    times = {name: [] for name in candidates}
    try:
        for _ in range(2):  # warm-up round
            for fn in candidates.values():
                fn()
        for _ in range(N):  # interleaved rounds: a noisy neighbour slows every candidate alike
            for name, fn in candidates.items():
                times[name].append(fn())
    finally:
        for pm in podmans:
            pm.close()
        for e in warm_envs:
            subprocess.run(base + ["system", "warm", "stop"], env=e, stdout=subprocess.DEVNULL)
    med = {name: common.median(ts) for name, ts in times.items()}
    crun_t = next((t for n, t in med.items() if n.startswith("crun")), None)
    ours = med["rootless run --rm busybox true (automatic driver)"]
    unconfined = med.get("rootless run --rm busybox true (automatic driver, seccomp=unconfined)")
    lines = []
    for name, t in med.items():
        lines.append(common.row(name, t, crun_t))
        if name.startswith("rootless") and crun_t:
            lines.append(f"    {(t - crun_t) * 1000:+.1f} ms over crun (aim: within 60 ms)")
        if name.startswith("podman"):
            lines.append(f"    rootless (automatic driver) / this: x{ours / t:.2f} (aim: well under 0.5)")
    if unconfined:
        lines.append(f"  the default seccomp filter adds {(ours - unconfined) * 1000:+.1f} ms to run --rm (aim: under 3 ms)")
    cold = med.get("rootless run --rm busybox true (automatic driver, cold: ROOTLESS_WARM=0)")
    cold_unconfined = med.get("rootless run --rm busybox true (automatic driver, cold: ROOTLESS_WARM=0, seccomp=unconfined)")
    if cold and cold_unconfined:
        lines.append(f"  the same, cold: {(cold - cold_unconfined) * 1000:+.1f} ms")
    common.report(f"run (median of {N} interleaved rounds; ratios to crun)", lines + notes)
    if not os.environ.get("ROOTLESS_BENCH_HOME"):
        env = home_env(os.path.join(work, "vfs"))
        subprocess.run(base + ["rm", "-f", "benchc"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sys.path.insert(0, os.path.join(common.ROOT, "src"))
        from rootless import idmap
        from rootless.storage.base import remove_tree

        remove_tree(work, idmap.load())  # layers belong to subordinate uids: removed in a user namespace
    return 0


if __name__ == "__main__":
    sys.exit(main())
