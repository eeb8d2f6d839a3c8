"""rootless.oci.seccomp: docker profiles settled per container (includes/excludes), and the spec's linux.seccomp."""

from __future__ import annotations

import json

import pytest

from rootless.oci import seccomp as osec
from rootless.oci import spec as ocispec
from rootless.runtime import DEFAULT_CAPABILITIES


def _names(resolved, action=None):
    out = set()
    for c in resolved["syscalls"]:
        if action is None or c["action"] == action:
            out.update(c["names"])
    return out


def test_default_profile_without_sys_admin():
    r = osec.resolve(osec.builtin(), DEFAULT_CAPABILITIES, machine="x86_64", kernel=(6, 1))
    assert r["defaultAction"] == "SCMP_ACT_ERRNO" and r["defaultErrnoRet"] == 1
    assert r["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _names(r, "SCMP_ACT_ALLOW")
    for name in ("read", "execve", "arch_prctl", "modify_ldt", "chroot", "ptrace", "socket", "personality"):
        assert name in allowed, name
    for name in ("unshare", "mount", "setns", "keyctl", "add_key", "bpf", "reboot", "open_by_handle_at",
                 "s390_runtime_instr", "set_tls"):
        assert name not in allowed, name
    clone = [c for c in r["syscalls"] if "clone" in c["names"]]
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in r["syscalls"]
    assert all("includes" not in c and "excludes" not in c for c in r["syscalls"])


def test_cap_add_changes_the_rules():
    caps = list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "SYS_TIME"]
    r = osec.resolve(osec.builtin(), caps, machine="x86_64", kernel=(6, 1))
    allowed = _names(r, "SCMP_ACT_ALLOW")
    assert {"unshare", "mount", "setns", "clone3", "kcmp", "settimeofday"} <= allowed
    assert not any(c["names"] == ["clone"] and c.get("args") for c in r["syscalls"])
    assert "clone3" not in _names(r, "SCMP_ACT_ERRNO")
    dropped = osec.resolve(osec.builtin(), [c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"], machine="x86_64")
    assert "chroot" not in _names(dropped)


def test_min_kernel_and_arches():
    old = osec.resolve(osec.builtin(), DEFAULT_CAPABILITIES, machine="x86_64", kernel=(4, 4))
    assert "ptrace" not in _names(old)
    arm = osec.resolve(osec.builtin(), DEFAULT_CAPABILITIES, machine="aarch64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "set_tls" in _names(arm) and "arch_prctl" not in _names(arm)
    assert osec._kernel("6.18.44-fc-v1045") == (6, 18) and osec._kernel("4.8") == (4, 8)


@pytest.mark.parametrize("text,words", [
    ("[]", "not a JSON object"),
    ("{", "invalid JSON"),
    ('{"syscalls": []}', "`defaultAction` is missing"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{}]}', "use one"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}', "`syscalls` is not a list"),
])
def test_parse_errors(text, words):
    with pytest.raises(osec.ProfileError) as ei:
        osec.parse(text, "p.json")
    assert ei.value.message.startswith("read seccomp profile `p.json`: ") and words in ei.value.message
    assert ei.value.hint


def test_security_opt_reads_checks_and_compacts(tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]\n}')
    kept = osec.security_opt(str(p))
    assert "\n" not in kept and json.loads(kept)["syscalls"][0]["names"] == ["mkdir"]
    assert osec.security_opt("unconfined") == "unconfined"
    p.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_MAYBE"}]}')
    with pytest.raises(osec.ProfileError) as ei:
        osec.security_opt(str(p))
    assert "unknown action `SCMP_ACT_MAYBE`" in ei.value.message and ei.value.hint
    with pytest.raises(osec.ProfileError) as ei:
        osec.security_opt(str(tmp_path / "nope.json"))
    assert "No such file" in ei.value.message


def _spec(**kw):
    opts = ocispec.RunOptions(cmd=("true",), **kw)
    inp = ocispec.SpecInput(image_config={}, options=opts, rootfs="/r", user=ocispec.User(0, 0, (), "/root"),
                            uid_mappings=(ocispec.Mapping(0, 1000, 1),), gid_mappings=(ocispec.Mapping(0, 1000, 1),),
                            hostname="h")
    return ocispec.generate(inp)


def test_spec_carries_linux_seccomp():
    s = _spec()
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "unshare" not in _names(s["linux"]["seccomp"])
    assert "unshare" in _names(_spec(cap_add=("SYS_ADMIN",))["linux"]["seccomp"])
    assert "seccomp" not in _spec(seccomp="unconfined")["linux"]
    assert "seccomp" not in _spec(privileged=True)["linux"]  # docker: --privileged is unconfined
    custom = json.dumps({"defaultAction": "SCMP_ACT_LOG"})
    assert _spec(seccomp=custom)["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_LOG", "syscalls": []}
