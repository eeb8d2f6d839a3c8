"""oci/spec.py: image config + run options -> config.json, field by field (a pure function)."""

import pytest

from rootless.oci import spec as s

pytestmark = pytest.mark.nosubuid

SUB = (s.Mapping(0, 1001, 1), s.Mapping(1, 100000, 65536))
ONE = (s.Mapping(0, 1002, 1),)


def inp(cfg=None, maps=SUB, cgroup_ns=True, binds=(), **opts):
    return s.SpecInput(
        image_config=cfg if cfg is not None else {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"]},
        options=s.RunOptions(**opts), rootfs="/r", user=s.User(0, 0, (), "/root"),
        uid_mappings=maps, gid_mappings=maps, hostname="h1", bind_files=binds, cgroup_ns=cgroup_ns)


def test_defaults_are_dockers():
    spec = s.generate(inp())
    assert spec["ociVersion"].startswith("1.0")
    p = spec["process"]
    assert p["args"] == ["sh"] and p["cwd"] == "/" and p["terminal"] is False
    assert p["user"] == {"uid": 0, "gid": 0, "umask": 0o022}
    assert p["env"] == ["PATH=/bin", "HOSTNAME=h1", "A=1", "HOME=/root"]
    assert p["capabilities"]["bounding"] == sorted(s.DEFAULT_CAPS, key=s.ALL_CAPS.index)
    assert p["capabilities"]["effective"] == p["capabilities"]["bounding"] == p["capabilities"]["permitted"]
    assert "ambient" not in p["capabilities"] and "inheritable" not in p["capabilities"]
    assert p["noNewPrivileges"] is False and "rlimits" not in p
    assert spec["root"] == {"path": "/r", "readonly": False}
    assert spec["hostname"] == "h1"
    ns = [n["type"] for n in spec["linux"]["namespaces"]]
    assert ns == ["pid", "ipc", "uts", "mount", "user", "network", "cgroup"]
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1},
                                           {"containerID": 1, "hostID": 100000, "size": 65536}]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"] and "/proc/sys" in spec["linux"]["readonlyPaths"]
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    shm = spec["mounts"][3]
    assert f"size={64 << 20}" in shm["options"]
    assert "gid=5" in spec["mounts"][2]["options"]
    assert spec["mounts"][5]["type"] == "sysfs" and "ro" in spec["mounts"][5]["options"]
    assert "annotations" not in spec


def test_one_uid_map_has_no_gid_5_and_no_cgroup_ns_when_absent():
    spec = s.generate(inp(maps=ONE, cgroup_ns=False))
    assert "gid=5" not in spec["mounts"][2]["options"]
    assert {"type": "cgroup"} not in spec["linux"]["namespaces"]


def test_entrypoint_and_cmd_rules():
    cfg = {"Entrypoint": ["/ep"], "Cmd": ["a", "b"]}
    assert s.command(cfg, s.RunOptions()) == ["/ep", "a", "b"]
    assert s.command(cfg, s.RunOptions(cmd=("x",))) == ["/ep", "x"]
    assert s.command(cfg, s.RunOptions(entrypoint=("/o",))) == ["/o"]  # docker drops the image's Cmd
    assert s.command(cfg, s.RunOptions(entrypoint=("/o",), cmd=("y",))) == ["/o", "y"]
    assert s.command(cfg, s.RunOptions(entrypoint=())) == ["a", "b"]
    assert s.command(cfg, s.RunOptions(entrypoint=(), cmd=("z",))) == ["z"]
    with pytest.raises(s.SpecError, match="no command"):
        s.command({}, s.RunOptions())


def test_env_merge_user_wins_in_place_and_tty_sets_term():
    spec = s.generate(inp(env=("A=2", "B=3"), tty=True))
    env = spec["process"]["env"]
    assert env == ["PATH=/bin", "HOSTNAME=h1", "TERM=xterm", "A=2", "B=3", "HOME=/root"]
    assert spec["process"]["terminal"] is True


def test_home_from_env_is_kept():
    spec = s.generate(inp(env=("HOME=/x",)))
    assert [e for e in spec["process"]["env"] if e.startswith("HOME=")] == ["HOME=/x"]


def test_workdir_user_and_groups():
    i = inp(cfg={"Cmd": ["sh"], "WorkingDir": "/img"})
    assert s.generate(i)["process"]["cwd"] == "/img"
    i = inp(workdir="/w")
    assert s.generate(i)["process"]["cwd"] == "/w"
    with pytest.raises(s.SpecError):
        s.generate(inp(workdir="rel"))
    i2 = s.SpecInput(image_config={"Cmd": ["id"]}, options=s.RunOptions(), rootfs="/r",
                     user=s.User(1000, 1000, (10, 20), "/home/app"), uid_mappings=SUB, gid_mappings=SUB, hostname="h")
    p = s.generate(i2)["process"]
    assert p["user"] == {"uid": 1000, "gid": 1000, "umask": 0o022, "additionalGids": [10, 20]}
    assert "HOME=/home/app" in p["env"]


def test_capabilities():
    caps = s.capabilities(s.RunOptions(cap_add=("net_admin",), cap_drop=("CAP_CHOWN", "kill")))
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    assert s.capabilities(s.RunOptions(cap_drop=("ALL",), cap_add=("SYS_ADMIN",))) == ["CAP_SYS_ADMIN"]
    assert s.capabilities(s.RunOptions(cap_add=("ALL",), cap_drop=("SYS_ADMIN",))) == [
        c for c in s.ALL_CAPS if c != "CAP_SYS_ADMIN"]
    assert s.capabilities(s.RunOptions(privileged=True)) == list(s.ALL_CAPS)
    with pytest.raises(s.SpecError, match="unknown capability"):
        s.capabilities(s.RunOptions(cap_add=("FLY",)))


def test_privileged_unmasks_and_read_only_and_nnp():
    spec = s.generate(inp(privileged=True, read_only=True, no_new_privileges=True))
    assert "maskedPaths" not in spec["linux"] and "readonlyPaths" not in spec["linux"]
    assert spec["root"]["readonly"] is True
    assert spec["process"]["noNewPrivileges"] is True


def test_host_network_binds_sys_and_keeps_host_netns():
    spec = s.generate(inp(network="host"))
    assert {"type": "network"} not in spec["linux"]["namespaces"]
    sysm = [m for m in spec["mounts"] if m["destination"] == "/sys"][0]
    assert sysm["type"] == "bind" and "rbind" in sysm["options"] and "ro" in sysm["options"]


def test_tmpfs_binds_ulimits_labels_init():
    spec = s.generate(inp(
        binds=(s.BindFile("/c/hosts", "/etc/hosts"),),
        tmpfs=(("/t", ""), ("/u", "size=1m,mode=700")), shm_size=1 << 20,
        ulimits=(s.Ulimit("nofile", 100, 200),), labels=(("a", "b"),), init=True))
    m = {x["destination"]: x for x in spec["mounts"]}
    assert m["/t"]["type"] == "tmpfs" and m["/t"]["options"] == ["rw", "noexec", "nosuid", "nodev"]
    assert m["/u"]["options"] == ["size=1m", "mode=700"]
    assert m["/etc/hosts"] == {"destination": "/etc/hosts", "type": "bind", "source": "/c/hosts",
                               "options": ["rbind", "rprivate"]}
    assert "size=1048576" in m["/dev/shm"]["options"]
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}]
    assert spec["annotations"] == {"a": "b", s.ANNOTATION_INIT: "true"}


def test_parse_helpers():
    assert s.parse_ulimit("nofile=10:20") == s.Ulimit("nofile", 10, 20)
    assert s.parse_ulimit("nproc=5") == s.Ulimit("nproc", 5, 5)
    for bad in ("nofile", "bogus=1", "nofile=a", "nofile=3:2"):
        with pytest.raises(s.SpecError):
            s.parse_ulimit(bad)
    assert s.parse_tmpfs("/x:size=1m") == ("/x", "size=1m")
    with pytest.raises(s.SpecError):
        s.parse_tmpfs("x")


def test_pure_same_input_same_output():
    assert s.generate(inp(env=("A=9",))) == s.generate(inp(env=("A=9",)))
