#!/usr/bin/env python3
"""Benchmark: a cold `rootless pull` of a large image from a local registry, against `podman pull`.

The image is built from this machine's files (no network, no debootstrap): /usr/lib/python3*,
/usr/share/{perl,vim,i18n,cmake-*,doc,...} packed into one gzip layer of 50+ MB, written as an OCI
layout with the test helpers (tests/fixtures/oci.py) and pushed with skopeo to a throw-away
docker-registry (tests/fixtures/registry.py). Then, each with an empty data-root (median of N):

- `rootless pull` (download, verify, unpack for the configured storage driver);
- `podman pull` from the same registry, when podman is installed (its own empty graph root);
- the unpack rate: a second pull into the same data-root with storage-driver = vfs finds every blob
  and only unpacks: uncompressed MB / seconds.

Run as the unprivileged user (the one with /etc/subuid ranges):
    python3 bench/bench_pull.py [--runs 3] [--pyz dist/rootless.pyz] [--min-mb 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from fixtures import oci  # noqa: E402
from fixtures.registry import Registry  # noqa: E402

SOURCES = ["/usr/lib/python3", "/usr/lib/python3.11", "/usr/share/perl", "/usr/share/vim", "/usr/share/i18n",
           "/usr/share/cmake-3.25", "/usr/share/doc", "/usr/share/icons", "/usr/share/man", "/usr/share/locale",
           "/usr/share/zoneinfo", "/usr/share/mime"]


def build_layer(min_compressed: int, max_uncompressed: int = 700 << 20) -> bytes:
    """An uncompressed tar of host trees, grown until its gzip is >= min_compressed bytes."""
    import io

    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for src in SOURCES:
            if not os.path.isdir(src):
                continue
            for dirpath, dirnames, filenames in os.walk(src):
                dirnames.sort()
                for name in [dirpath] + [os.path.join(dirpath, f) for f in sorted(filenames)]:
                    try:
                        ti = tf.gettarinfo(name, arcname=name.lstrip("/"))
                    except OSError:
                        continue
                    if ti is None or not (ti.isfile() or ti.isdir() or ti.issym()):
                        continue
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = "root"
                    if ti.isfile():
                        try:
                            with open(name, "rb") as f:
                                tf.addfile(ti, f)
                        except OSError:
                            continue
                        total += ti.size
                    else:
                        tf.addfile(ti)
            # gzip ratio of these trees is about 2.7:1; stop once we surely have enough
            if total >= max_uncompressed or total > min_compressed * 3.2:
                break
    return buf.getvalue()


def rootless_cmd(pyz: str):
    if pyz:
        return [sys.executable, pyz]
    return [sys.executable, "-m", "rootless"]


def rootless_env(home: str) -> dict:
    env = dict(os.environ)
    env.update({"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config"),
                "XDG_DATA_HOME": os.path.join(home, ".local", "share"),
                "XDG_CACHE_HOME": os.path.join(home, ".cache"),
                "PYTHONPATH": os.path.join(ROOT, "src")})
    return env


def write_config(home: str, text: str) -> None:
    d = os.path.join(home, ".config", "rootless")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "daemon.toml"), "w") as f:
        f.write(text)


def timed(argv, env, timeout=900) -> float:
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{p.stdout.decode()[-2000:]}\n{p.stderr.decode()[-2000:]}")
    return dt


def rm_userns(path: str, env) -> None:
    """Layer files belong to subordinate ids: remove them from inside the user namespace."""
    if not os.path.exists(path):
        return
    if shutil.which("podman"):
        subprocess.run(["podman", "unshare", "rm", "-rf", path], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.path.exists(path):
        # rootless's own user-namespace helper, via a tiny script
        code = ("import sys, shutil; from rootless import idmap; from rootless.runtime.userns import run_in_userns;"
                "run_in_userns(shutil.rmtree, sys.argv[1], True, ids=idmap.load())")
        subprocess.run([sys.executable, "-c", code, path], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pyz", default="", help="time this .pyz instead of the source tree")
    ap.add_argument("--min-mb", type=int, default=50, help="compressed size of the layer, at least (MB)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bench-pull-")
    reg = None
    try:
        t0 = time.monotonic()
        tar = build_layer(args.min_mb << 20)
        gz = oci.gzip_bytes(tar)
        lay = oci.OCILayout(os.path.join(work, "layout"))
        img = lay.add_image([(tar, "gzip")], {"Cmd": ["/bin/sh"]})
        lay.tag(img.manifest, "latest")
        print(f"image: 1 layer, {len(tar) / 1e6:.1f} MB uncompressed, {len(gz) / 1e6:.1f} MB gzip "
              f"(built in {time.monotonic() - t0:.1f} s)")
        del gz
        reg = Registry(os.path.join(work, "registry"))
        os.makedirs(reg.root, exist_ok=True)
        reg.start()
        ref = reg.ref("bench/big:latest")
        reg.push_oci(lay.path, "latest", "bench/big:latest", extra=["--preserve-digests"])
        print(f"pushed {ref}")

        mb = len(tar) / 1e6
        results = {"uncompressed_mb": round(mb, 1), "compressed_mb": round(img.layers[0].size / 1e6, 1)}
        podman = shutil.which("podman")
        for driver, podman_driver in (("overlay2", "overlay"), ("vfs", "vfs")):
            rl_times, unpack_times = [], []
            for i in range(args.runs):
                home = os.path.join(work, f"home-rl-{driver}-{i}")
                os.makedirs(home)
                env = rootless_env(home)
                write_config(home, f'insecure-registries = ["{reg.host}"]\nstorage-driver = "{driver}"\n')
                rl_times.append(timed(rootless_cmd(args.pyz) + ["pull", "-q", ref], env))
                if driver == "overlay2":
                    # blobs are there now: a pull for the vfs driver only unpacks
                    write_config(home, f'insecure-registries = ["{reg.host}"]\nstorage-driver = "vfs"\n')
                    unpack_times.append(timed(rootless_cmd(args.pyz) + ["pull", "-q", ref], env))
                rm_userns(os.path.join(home, ".local"), env)
            rl = statistics.median(rl_times)
            print(f"rootless pull, {driver} (cold): median {rl:.2f} s of {[round(x, 2) for x in rl_times]} "
                  f"({mb / rl:.0f} MB/s uncompressed)")
            results[f"rootless_{driver}_s"] = round(rl, 2)
            if unpack_times:
                up = statistics.median(unpack_times)
                print(f"rootless unpack only (vfs, blobs present): median {up:.2f} s -> {mb / up:.0f} MB/s")
                results["unpack_vfs_mb_s"] = round(mb / up, 1)
            if not podman:
                continue
            pm_times = []
            for i in range(args.runs):
                home = os.path.join(work, f"home-pm-{driver}-{i}")
                os.makedirs(os.path.join(home, ".config", "containers"), exist_ok=True)
                with open(os.path.join(home, ".config", "containers", "registries.conf"), "w") as f:
                    f.write(f'[[registry]]\nlocation = "{reg.host}"\ninsecure = true\n')
                env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                           XDG_DATA_HOME=os.path.join(home, ".local", "share"))
                pm_times.append(timed([podman, "--storage-driver", podman_driver, "pull", "-q", ref], env))
                subprocess.run([podman, "--storage-driver", podman_driver, "system", "reset", "-f"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            pm = statistics.median(pm_times)
            print(f"podman pull, {podman_driver} (cold): median {pm:.2f} s of {[round(x, 2) for x in pm_times]}")
            print(f"ratio rootless/podman ({driver}): {rl / pm:.2f} (below 1 = rootless faster)")
            results[f"podman_{podman_driver}_s"] = round(pm, 2)
            results[f"ratio_{driver}"] = round(rl / pm, 2)
        if not podman:
            print("podman: not installed here; no ratio (install podman and run again)")
        print(json.dumps(results))
        return 0
    finally:
        if reg is not None:
            reg.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            rm_userns(work, rootless_env(work))
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
