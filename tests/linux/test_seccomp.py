"""rootless.linux.seccomp: the profile -> classic BPF compiler, its cache, and the real kernel's verdicts.

Two judges: a small BPF interpreter here (every op against a Python reference, every architecture
block, far jumps), and the kernel itself: a forked child sets no_new_privs, loads the program and
makes the system calls; the parent reads what each returned.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import struct
from typing import Dict, List, Sequence, Tuple

import pytest

from rootless.linux import seccomp as lsec
from rootless.linux import syscall_tables as tables
from rootless.oci import seccomp as osec
from rootless.runtime import DEFAULT_CAPABILITIES

X86_64 = os.uname().machine == "x86_64"
needs_x86_64 = pytest.mark.skipif(not X86_64, reason="the syscall numbers below are x86_64's")
AUDIT_X86_64, AUDIT_I386 = 0xC000003E, 0x40000003
ALLOW = lsec.RET_ALLOW
EPERM_RET = lsec.RET_ERRNO | errno.EPERM
M64 = 0xFFFFFFFFFFFFFFFF


def run_bpf(prog: bytes, nr: int, arch: int = AUDIT_X86_64, args: Sequence[int] = ()) -> int:
    """Evaluate the program on one seccomp_data, as the kernel's classic BPF does."""
    a6 = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iI Q 6Q", nr, arch, 0, *[x & M64 for x in a6])
    ins = lsec.instructions(prog)
    pc, acc, steps = 0, 0, 0
    while True:
        steps += 1
        assert steps < 10000
        code, jt, jf, k = ins[pc]
        pc += 1
        if code == lsec.LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == lsec.ALU_AND_K:
            acc &= k
        elif code == lsec.JMP_JA:
            pc += k
        elif code in (lsec.JEQ_K, lsec.JGT_K, lsec.JGE_K):
            ok = acc == k if code == lsec.JEQ_K else acc > k if code == lsec.JGT_K else acc >= k
            pc += jt if ok else jf
        elif code == lsec.RET_K:
            return k
        else:
            raise AssertionError(f"unknown opcode {code:#x}")


def default_program(caps=DEFAULT_CAPABILITIES) -> bytes:
    return lsec.compile_program(osec.resolve(osec.builtin(), caps, machine="x86_64"), "SCMP_ARCH_X86_64")


# --- the default profile's decisions, by the interpreter -------------------------------------------

X = tables.X86_64
CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17

DECISIONS: List[Tuple[str, Tuple[int, ...], int]] = [
    ("read", (), ALLOW), ("write", (), ALLOW), ("openat", (), ALLOW), ("execve", (), ALLOW),
    ("mkdir", (), ALLOW), ("arch_prctl", (), ALLOW), ("getpid", (), ALLOW), ("prctl", (), ALLOW),
    ("unshare", (CLONE_NEWUSER,), EPERM_RET), ("unshare", (0,), EPERM_RET),
    ("setns", (), EPERM_RET), ("mount", (), EPERM_RET), ("umount2", (), EPERM_RET),
    ("keyctl", (), EPERM_RET), ("add_key", (), EPERM_RET), ("request_key", (), EPERM_RET),
    ("bpf", (), EPERM_RET), ("ptrace", (), ALLOW), ("kexec_load", (), EPERM_RET), ("reboot", (), EPERM_RET),
    ("open_by_handle_at", (), EPERM_RET), ("userfaultfd", (), EPERM_RET), ("pivot_root", (), EPERM_RET),
    ("clone", (SIGCHLD,), ALLOW), ("clone", (CLONE_NEWUSER | SIGCHLD,), EPERM_RET),
    ("clone", (CLONE_NEWNET | SIGCHLD,), EPERM_RET), ("clone", (1 << 32 | SIGCHLD,), ALLOW),
    ("clone3", (), lsec.RET_ERRNO | errno.ENOSYS),
    ("personality", (0,), ALLOW), ("personality", (8,), ALLOW), ("personality", (0x20000,), ALLOW),
    ("personality", (0x20008,), ALLOW), ("personality", (0xFFFFFFFF,), ALLOW),
    ("personality", (0x0040000,), EPERM_RET), ("personality", (0x0400000,), EPERM_RET),
    ("personality", (1 << 32,), EPERM_RET),
    ("socket", (2,), ALLOW), ("socket", (40,), EPERM_RET), ("socket", (40 | 1 << 32,), ALLOW),
    ("socket", (38,), EPERM_RET), ("socket", (39,), ALLOW), ("socket", (41,), ALLOW), ("socket", (37,), ALLOW),
    ("io_uring_setup", (), EPERM_RET), ("fchmodat2", (), ALLOW), ("mseal", (), ALLOW),
    ("chroot", (), ALLOW), ("sethostname", (), EPERM_RET), ("iopl", (), EPERM_RET),
]


@needs_x86_64
@pytest.mark.parametrize("name,args,want", DECISIONS, ids=[f"{n}{a}" for n, a, _ in DECISIONS])
def test_default_profile_decisions(name, args, want):
    assert run_bpf(default_program(), X[name], args=args) == want


def test_cap_sys_admin_includes_and_excludes():
    caps = list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN"]
    prog = lsec.compile_program(osec.resolve(osec.builtin(), caps, machine="x86_64"), "SCMP_ARCH_X86_64")
    for name, args in (("unshare", (CLONE_NEWUSER,)), ("mount", ()), ("clone", (CLONE_NEWUSER | SIGCHLD,)),
                       ("clone3", ()), ("setns", ())):
        assert run_bpf(prog, X[name], args=args) == ALLOW, name
    assert run_bpf(prog, X["keyctl"]) == EPERM_RET  # not a capability matter


def test_unknown_high_numbers_are_enosys_and_foreign_arches_are_killed():
    prog = default_program()
    assert run_bpf(prog, 999) == lsec.RET_ERRNO | errno.ENOSYS  # newer than the table: libc falls back
    assert run_bpf(prog, X["read"], arch=0xC00000B7) == lsec.RET_KILL_PROCESS  # aarch64 on x86_64
    # i386 (int 0x80) gets its own numbers: 20 is getpid there, 26 ptrace, 120 clone
    assert run_bpf(prog, tables.I386["getpid"], arch=AUDIT_I386) == ALLOW
    assert run_bpf(prog, tables.I386["unshare"], arch=AUDIT_I386) == EPERM_RET
    assert run_bpf(prog, tables.I386["socketcall"], arch=AUDIT_I386) == ALLOW
    assert run_bpf(prog, tables.I386["clone"], arch=AUDIT_I386, args=(CLONE_NEWUSER,)) == EPERM_RET
    # x32: x86_64's arch with bit 30 in nr
    assert run_bpf(prog, lsec.X32_SYSCALL_BIT | tables.X32["getpid"]) == ALLOW
    assert run_bpf(prog, lsec.X32_SYSCALL_BIT | tables.X32["unshare"]) == EPERM_RET
    no_x32 = osec.resolve(osec.builtin(), DEFAULT_CAPABILITIES, machine="x86_64")
    no_x32["architectures"] = ["SCMP_ARCH_X86_64"]
    p2 = lsec.compile_program(no_x32, "SCMP_ARCH_X86_64")
    assert run_bpf(p2, lsec.X32_SYSCALL_BIT | tables.X32["getpid"]) == EPERM_RET
    assert run_bpf(p2, tables.I386["getpid"], arch=AUDIT_I386) == lsec.RET_KILL_PROCESS


def test_program_is_short_and_the_search_is_shallow():
    prog = default_program()
    assert len(prog) // 8 < 1000
    # the longest path for an allowed syscall: a binary search, not a scan of every name
    ins = lsec.instructions(prog)
    assert sum(1 for c, *_ in ins if c == lsec.RET_K) > 10


# --- comparisons against a Python reference --------------------------------------------------------

def _ref(op: str, arg: int, v: int, v2: int) -> bool:
    return {"SCMP_CMP_EQ": arg == v, "SCMP_CMP_NE": arg != v, "SCMP_CMP_LT": arg < v, "SCMP_CMP_LE": arg <= v,
            "SCMP_CMP_GT": arg > v, "SCMP_CMP_GE": arg >= v, "SCMP_CMP_MASKED_EQ": arg & v == v2}[op]


def _one_rule(op: str, v: int, v2: int = 0, index: int = 2) -> Dict:
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": index, "value": v, "valueTwo": v2, "op": op}]},
                         {"names": ["getppid", "exit_group", "exit", "write"], "action": "SCMP_ACT_ALLOW"}]}


EDGE = [0, 1, 7, 0xFFFFFFFF, 1 << 32, (1 << 32) + 7, 0xFFFFFFFF00000000, M64, M64 - 1, 0x7FFFFFFFFFFFFFFF]


@needs_x86_64
@pytest.mark.parametrize("op", lsec._OPS)
def test_comparisons_match_the_reference(op):
    rnd = random.Random(op)
    values = EDGE + [rnd.getrandbits(64) for _ in range(6)] + [rnd.getrandbits(33) for _ in range(4)]
    for v in values:
        v2 = v & rnd.getrandbits(64)
        prog = lsec.compile_program(_one_rule(op, v, v2), "SCMP_ARCH_X86_64")
        for arg in values + [v - 1 & M64, v + 1 & M64, v ^ (1 << 32), v2]:
            want = ALLOW if _ref(op, arg, v, v2) else EPERM_RET
            assert run_bpf(prog, X["getpid"], args=(0, 0, arg)) == want, (op, hex(v), hex(v2), hex(arg))


@needs_x86_64
def test_far_jumps_are_bridged():
    """Hundreds of argument rules on one syscall: conditional jumps beyond 255 go through `ja`."""
    rules = [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": n, "op": "SCMP_CMP_EQ"}]}
             for n in range(0, 400, 3)]
    rules.append({"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5})
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules}
    prog = lsec.compile_program(prof, "SCMP_ARCH_X86_64")
    assert len(prog) // 8 > 300 and any(c == lsec.JMP_JA for c, *_ in lsec.instructions(prog))
    for n in range(0, 402):
        assert run_bpf(prog, X["getpid"], args=(n,)) == (ALLOW if n % 3 == 0 else EPERM_RET), n
    assert run_bpf(prog, X["write"]) == lsec.RET_ERRNO | 5
    assert run_bpf(prog, X["read"]) == EPERM_RET


def test_actions():
    assert lsec.action_value("SCMP_ACT_KILL", None, 1) == lsec.RET_KILL_THREAD
    assert lsec.action_value("SCMP_ACT_KILL_PROCESS", None, 1) == lsec.RET_KILL_PROCESS
    assert lsec.action_value("SCMP_ACT_TRAP", None, 1) == lsec.RET_TRAP
    assert lsec.action_value("SCMP_ACT_LOG", None, 1) == lsec.RET_LOG
    assert lsec.action_value("SCMP_ACT_TRACE", 3, 1) == lsec.RET_ERRNO | errno.ENOSYS
    assert lsec.action_value("SCMP_ACT_ERRNO", None, 13) == lsec.RET_ERRNO | 13


@pytest.mark.parametrize("prof,words", [
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "unknown action `SCMP_ACT_BOGUS`"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]},
     "unknown comparison `SCMP_CMP_ABOUT`"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "index `6` is not 0-5"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]},
     "names is not a list"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": -4}]},
     "errnoRet `-4`"),
])
def test_bad_profiles_are_errors_with_hints(prof, words):
    with pytest.raises(lsec.SeccompError) as ei:
        lsec.compile_program(prof, "SCMP_ARCH_X86_64")
    assert words in ei.value.message and ei.value.message.startswith("compile seccomp profile: ")
    assert ei.value.hint


def test_unknown_names_are_skipped():
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["chown32", "no_such_call", "read"],
                                                             "action": "SCMP_ACT_ALLOW"}]}
    prog = lsec.compile_program(prof, "SCMP_ARCH_X86_64")
    assert run_bpf(prog, X["read"]) == ALLOW


# --- the cache ---------------------------------------------------------------------------------------

@needs_x86_64
def test_program_is_cached_and_a_broken_cache_is_recompiled(tmp_path, monkeypatch):
    prof = osec.resolve(osec.builtin(), DEFAULT_CAPABILITIES)
    first = lsec.program(prof, cache_dir=str(tmp_path))
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".bpf")
    assert oct(os.stat(tmp_path / files[0]).st_mode & 0o777) == "0o600"

    def boom(*a, **kw):
        raise AssertionError("compiled again")

    monkeypatch.setattr(lsec, "compile_program", boom)
    assert lsec.program(prof, cache_dir=str(tmp_path)) == first
    with pytest.raises(AssertionError):  # another capability set: another key
        lsec.program(osec.resolve(osec.builtin(), ["CAP_SYS_ADMIN"]), cache_dir=str(tmp_path))
    monkeypatch.undo()
    cached = (tmp_path / files[0]).read_bytes()
    for broken in (cached[:-8], cached[:-8] + b"\x06\x00\x00\x00\x00\x00\xff\x7f", b"", cached[:20]):
        (tmp_path / files[0]).write_bytes(broken)  # torn, or an `allow everything` slipped in
        assert lsec.program(prof, cache_dir=str(tmp_path)) == first
        assert (tmp_path / files[0]).read_bytes() == cached


# --- the kernel's verdicts --------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def kernel_verdicts(prog: bytes, calls: Sequence[Tuple[int, Sequence[int]]], prepare=None) -> List[int]:
    """In a forked child: (prepare), no_new_privs, load ``prog``, make each call; 0 or its errno each."""
    from rootless.linux import syscalls as sc

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            if prepare:
                prepare()
            sc.set_no_new_privs()
            sc.seccomp_set_filter(prog)
            out = []
            for nr, args in calls:
                ctypes.set_errno(0)
                rv = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a & M64) for a in args])
                out.append(ctypes.get_errno() if rv == -1 else 0)
            os.write(w, json.dumps(out).encode())
        except BaseException as e:  # noqa: BLE001
            os.write(w, json.dumps(repr(e)).encode())
            code = 1
        os._exit(code)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    result = json.loads(data.decode())
    assert status == 0 and isinstance(result, list), result
    return result


def _userns_and_mountns():
    from rootless.linux import syscalls as sc

    uid, gid = os.getuid(), os.getgid()
    sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)  # caps in a namespace of our own: only seccomp says no
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


@needs_x86_64
def test_kernel_applies_the_default_profile():
    keyring = (1 << 64) - 3  # KEY_SPEC_SESSION_KEYRING
    b = ctypes.create_string_buffer
    user, desc, payload = b(b"user"), b(b"rootless-test"), b(b"x")
    tmpfs, none, tmp = b(b"tmpfs"), b(b"none"), b(b"/tmp")
    addr = ctypes.addressof
    calls = [
        (X["getpid"], ()),
        (X["keyctl"], (0, keyring, 0)),
        (X["add_key"], (addr(user), addr(desc), addr(payload), 1, keyring)),
        (X["mount"], (addr(none), addr(tmp), addr(tmpfs), 0, 0)),
        (X["unshare"], (CLONE_NEWUSER,)),  # after mount: the new namespace would not own our mounts
        (X["personality"], (0x0040000,)),
        (X["personality"], (0xFFFFFFFF,)),
        (X["clone3"], (0, 0)),
        (X["socket"], (40, 1, 0)),
        (999, ()),
    ]
    want = [0, errno.EPERM, errno.EPERM, errno.EPERM, errno.EPERM, errno.EPERM, 0, errno.ENOSYS, errno.EPERM,
            errno.ENOSYS]
    assert kernel_verdicts(default_program(), calls, prepare=_userns_and_mountns) == want
    # the same calls, unfiltered, in the same kind of child: they do work there (so it is the filter)
    allow_all = lsec.compile_program({"defaultAction": "SCMP_ACT_ALLOW"}, "SCMP_ARCH_X86_64")
    got = kernel_verdicts(allow_all, calls[:5], prepare=_userns_and_mountns)
    assert got == [0, 0, 0, 0, 0], got


@needs_x86_64
def test_kernel_agrees_on_64_bit_comparisons():
    for op in ("SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"):
        v = (5 << 32) | 9
        prog = lsec.compile_program(_one_rule(op, v, v & 0xF0000000F), "SCMP_ARCH_X86_64")
        args = [v, v + 1, v - 1, 9, 5 << 32, M64, 0]
        got = kernel_verdicts(prog, [(X["getpid"], (0, 0, a)) for a in args])
        want = [0 if _ref(op, a, v, v & 0xF0000000F) else errno.EPERM for a in args]
        assert got == want, op


def test_native_arch_has_a_table():
    if os.uname().machine not in lsec.NATIVE:
        pytest.skip("no table for this machine")
    assert lsec.native_arch() in tables.TABLES
