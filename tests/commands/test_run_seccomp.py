"""The default seccomp profile end to end (issue 11 item 10): real containers, real filters.

Without a filter a container could make a nested user namespace with a full capability set
(mount, veth, bridge), use the kernel keyring, change its personality. Docker's default profile
refuses that; so must ours, and `--security-opt seccomp=unconfined|FILE`, the config's
`seccomp-profile`, `--cap-add SYS_ADMIN`, exec, info and inspect must behave as docker's do.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("clean_data_root")

EPERM, ENOSYS = 1, 38
# everything allowed but mkdir, which fails with EACCES (not the usual EPERM: the profile's errno is used)
DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


def _seccomp_line(out: str) -> str:
    return " ".join(out.split())


@pytest.mark.nosubuid
def test_default_profile_is_applied(rl, bb):
    r = rl.ok("run", "--rm", "--network", "none", bb, "grep", "Seccomp:", "/proc/self/status")
    assert _seccomp_line(r.stdout) == "Seccomp: 2", r


@pytest.mark.nosubuid
def test_unconfined_has_no_filter(rl, bb):
    r = rl.ok("run", "--rm", "--network", "none", "--security-opt", "seccomp=unconfined", bb,
              "grep", "Seccomp:", "/proc/self/status")
    assert _seccomp_line(r.stdout) == "Seccomp: 0", r
    insp = rl.ok("create", "--security-opt", "seccomp=unconfined", bb, "true").stdout.strip()
    hc = json.loads(rl.ok("inspect", insp).stdout)[0]["HostConfig"]
    assert hc["SecurityOpt"] == ["seccomp=unconfined"]


@pytest.mark.nosubuid
def test_nested_user_namespace_is_refused(rl, bb):
    """The audit's attack: `unshare -r` in the container gives a full capability set in a new user
    namespace, and with it mount (and veth, bridges in a new netns)."""
    r = rl("run", "--rm", "--network", "none", bb, "sh", "-c",
           "unshare -U true; echo U=$?; unshare -r -m mount -t tmpfs none /tmp && echo MOUNTED; "
           "unshare -r -n true; echo N=$?; echo ordinary > /tmp/f && cat /tmp/f && ls / >/dev/null && echo ls-ok")
    assert r.returncode == 0, r
    assert "U=1" in r.stdout and "N=1" in r.stdout, r
    assert "MOUNTED" not in r.stdout, r
    assert "ordinary\nls-ok" in r.stdout, r
    assert "Operation not permitted" in r.stderr, r


@pytest.mark.nosubuid
def test_probe_decisions(rl, seccomp_probe_image):
    """Docker's default profile's decisions, both ways, from a static probe in an image."""
    host = seccomp_probe_image.split("/")[0]
    rl.write_config(f'insecure-registries = ["{host}"]\n')
    rl.ok("pull", "-q", seccomp_probe_image)
    expect = {
        ("keyctl",): f"errno={EPERM}",
        ("add_key",): f"errno={EPERM}",
        ("unshare-user",): f"errno={EPERM}",
        ("clone-newuser",): f"errno={EPERM}",
        ("clone3",): f"errno={ENOSYS}",  # ENOSYS, so that a libc falls back to clone
        ("mount",): f"errno={EPERM}",
        ("vsock",): f"errno={EPERM}",
        ("alg",): f"errno={EPERM}",  # AF_ALG: refused since moby/profiles seccomp v0.2.3
        ("personality", "0x0040000"): f"errno={EPERM}",  # ADDR_NO_RANDOMIZE
        ("personality", "0xffffffff"): "ok",  # the query
        ("personality", "8"): "ok",  # PER_LINUX32
        ("clone",): "ok",  # a plain fork
        ("inet",): "ok",
        ("getpid",): "ok",
        ("mkdir", "/tmp/d"): "ok",
    }
    got = {}
    for args in expect:
        r = rl("run", "--rm", "--network", "none", seccomp_probe_image, "/probe", *args)
        assert r.returncode == 0, r
        got[args] = r.stdout.strip()
    assert got == expect


@pytest.mark.nosubuid
def test_cap_add_sys_admin_changes_the_profile(rl, bb):
    """Docker's includes/excludes: with CAP_SYS_ADMIN, unshare and clone with namespace flags are allowed."""
    r = rl("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", bb, "sh", "-c", "unshare -U true; echo U=$?")
    assert r.returncode == 0 and "U=0" in r.stdout, r


@pytest.mark.nosubuid
def test_custom_profile_denies_mkdir_with_its_errno(rl, bb, tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(DENY_MKDIR, indent=2))
    r = rl("run", "--rm", "--network", "none", "--security-opt", f"seccomp={path}", bb, "sh", "-c",
           "mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched")
    assert r.returncode == 0, r
    assert "rc=1" in r.stdout and "touched" in r.stdout, r
    assert "Permission denied" in r.stderr, r  # errno 13: EACCES, not the default EPERM
    cid = rl.ok("create", "--security-opt", f"seccomp={path}", bb, "sh", "-c", "mkdir /tmp/x; echo rc=$?").stdout.strip()
    opts = json.loads(rl.ok("inspect", cid).stdout)[0]["HostConfig"]["SecurityOpt"]
    assert len(opts) == 1 and opts[0].startswith("seccomp={")  # the profile itself, compact, as docker keeps it
    assert json.loads(opts[0][len("seccomp="):]) == DENY_MKDIR
    path.unlink()  # kept with the container: its file is no longer needed
    r = rl("start", "-a", cid)
    assert r.returncode == 0 and "rc=1" in r.stdout, r


@pytest.mark.nosubuid
def test_bad_profile_is_an_error_with_a_hint(rl, bb, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}')
    r = rl("run", "--rm", "--security-opt", f"seccomp={bad}", bb, "true")
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and "SCMP_ACT_NOPE" in r.stderr and "\nhint: " in r.stderr, r
    assert "Traceback" not in r.stderr
    r = rl("run", "--rm", "--security-opt", f"seccomp={tmp_path}/missing.json", bb, "true")
    assert r.returncode != 0 and "error: read seccomp profile" in r.stderr and "hint:" in r.stderr, r


@pytest.mark.nosubuid
def test_config_key_seccomp_profile(rl, bb, tmp_path):
    path = tmp_path / "daemon-profile.json"
    path.write_text(json.dumps(DENY_MKDIR))
    host = bb.split("/")[0]
    rl.write_config(f'insecure-registries = ["{host}"]\nseccomp-profile = "{path}"\n')
    r = rl("run", "--rm", "--network", "none", bb, "sh", "-c", "mkdir /tmp/x; echo rc=$?")
    assert "rc=1" in r.stdout and "Permission denied" in r.stderr, r
    info = rl.ok("info").stdout
    assert f"  seccomp\n   Profile: {path}\n" in info, info
    rl.write_config(f'insecure-registries = ["{host}"]\nseccomp-profile = "unconfined"\n')
    r = rl.ok("run", "--rm", "--network", "none", bb, "grep", "Seccomp:", "/proc/self/status")
    assert _seccomp_line(r.stdout) == "Seccomp: 0", r


@pytest.mark.nosubuid
def test_info_lists_the_builtin_profile(rl, bb):
    info = rl.ok("info").stdout
    assert " Security Options:\n  seccomp\n   Profile: builtin\n" in info, info
    d = json.loads(rl.ok("info", "--format", "json").stdout)
    assert "name=seccomp,profile=builtin" in d["SecurityOptions"]


@pytest.mark.nosubuid
def test_exec_gets_the_filter_too(rl, bb):
    cid = rl.ok("run", "-d", "--network", "none", bb, "sleep", "60").stdout.strip()
    try:
        r = rl.ok("exec", cid, "grep", "Seccomp:", "/proc/self/status")
        assert _seccomp_line(r.stdout) == "Seccomp: 2", r
        r = rl("exec", cid, "unshare", "-r", "true")
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r
    finally:
        rl("rm", "-f", cid)


@pytest.mark.nosubuid
def test_init_pid1_is_filtered_too(rl, bb):
    """With --init our pid 1 stays: it must not be a way around the filter."""
    r = rl.ok("run", "--rm", "--init", "--network", "none", bb, "sh", "-c",
              "grep Seccomp: /proc/1/status; grep Seccomp: /proc/self/status")
    assert [_seccomp_line(x) for x in r.stdout.splitlines()] == ["Seccomp: 2", "Seccomp: 2"], r
