"""`rootless info`: docker info's fields, and a warning with a hint for each rootless pitfall."""

import json
import os
import pwd

import pytest

from fixtures.users import has_subuid
from rootless import config, sysinfo

pytestmark = pytest.mark.nosubuid


def test_info_shows_docker_root_dir_and_storage_driver(rl):
    r = rl.ok("info")
    assert f" Docker Root Dir: {rl.data_root}\n" in r.stdout
    assert " Storage Driver: " in r.stdout and "  Chosen because: " in r.stdout
    assert " Logging Driver: json-file" in r.stdout
    assert " Cgroup Version: " in r.stdout and "  Limits: " in r.stdout
    assert "  127.0.0.0/8" in r.stdout  # loopback is insecure by default, as in docker
    for tool in ("newuidmap", "newgidmap", "slirp4netns", "fuse-overlayfs"):
        assert f"  {tool}: /usr/bin/{tool}" in r.stdout
    assert "Traceback" not in r.stderr


def test_info_format_docker_root_dir(rl):
    r = rl.ok("info", "--format", "{{.DockerRootDir}}")
    assert r.stdout == rl.data_root + "\n"


def test_info_format_json(rl):
    d = json.loads(rl.ok("info", "--format", "json").stdout)
    assert d["DockerRootDir"] == rl.data_root and d["OSType"] == "linux"


def test_info_maps_and_subuid_warning(rl):
    r = rl.ok("info")
    me = pwd.getpwuid(os.getuid()).pw_name
    assert f"  0 -> {os.getuid()} (1)" in r.stdout
    if has_subuid():
        assert "  1 -> " in r.stdout
        assert "has no range in /etc/subuid" not in r.stderr
    else:
        assert f"warning: user `{me}` has no range in /etc/subuid and /etc/subgid" in r.stderr
        assert f"hint: ask an administrator to run `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {me}`" in r.stderr


def test_info_without_xdg_runtime_dir(rl):
    r = rl.ok("info", env={"XDG_RUNTIME_DIR": ""})
    fallback = f"/tmp/rootless-run-{os.getuid()}"
    assert f" Exec Root: {fallback}" in r.stdout
    assert f"warning: XDG_RUNTIME_DIR is not set; using `{fallback}`" in r.stderr
    assert "hint: log in through a session that sets it" in r.stderr


def test_info_with_broken_config(rl):
    path = rl.write_config("storage-driver = overlay\n")
    r = rl("info")
    assert r.returncode == 125
    assert r.stderr.startswith(f"error: read config file `{path}`: invalid TOML")
    assert "hint: fix the syntax" in r.stderr and "Traceback" not in r.stderr


def test_info_reports_hybrid_cgroups_with_hint(rl):
    with open("/proc/self/mountinfo") as f:
        v2_at_root = any(" /sys/fs/cgroup " in ln and " - cgroup2 " in ln for ln in f)
    r = rl.ok("info")
    if not v2_at_root:
        assert "warning: resource limits (--memory, --cpus, --pids-limit) are unavailable" in r.stderr
        assert "hint: boot with `systemd.unified_cgroup_hierarchy=1`" in r.stderr


def test_gather_with_given_subuid_files(tmp_path):
    me = pwd.getpwuid(os.getuid()).pw_name
    su, sg = tmp_path / "subuid", tmp_path / "subgid"
    su.write_text(f"someone:100000:65536\n{me}:300000:1000\n")
    sg.write_text(f"{os.getuid()}:400000:1000\n")
    cfg = config.finish({"data_root": str(tmp_path / "d")}, None, {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)})
    d = sysinfo.gather(cfg, subuid=str(su), subgid=str(sg))
    assert d["Rootless"]["UIDMap"] == [f"0 -> {os.getuid()} (1)", "1 -> 300000 (1000)"]
    assert d["Rootless"]["GIDMap"] == [f"0 -> {os.getgid()} (1)", "1 -> 400000 (1000)"]
    assert not any("has no range" in w for w in d["Warnings"])
    su.write_text("someone:100000:65536\n")
    d = sysinfo.gather(cfg, subuid=str(su), subgid=str(sg))
    assert any("has no range in " + str(su) in w for w in d["Warnings"])


def test_network_filesystem_is_detected(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /home rw - nfs4 server:/home rw\n"
    )
    assert sysinfo._mount_fstype("/home/u/.local/share/rootless", str(mi)) == "nfs4"
    assert sysinfo._mount_fstype("/var/tmp", str(mi)) == "ext4"
