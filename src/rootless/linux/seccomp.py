"""Compile an OCI ``linux.seccomp`` object to a classic BPF program, cache it, install it.

The input is the runtime-spec form (what oci/seccomp.py makes of a Docker profile once its
includes/excludes are settled): ``defaultAction``, ``defaultErrnoRet``, ``architectures``
(SCMP_ARCH_*), ``syscalls[{names, action, errnoRet, args[{index, value, valueTwo, op}]}]``.
No libseccomp (a zipapp cannot carry a C library), so this is the part of libseccomp we need.

The program (seccomp_data: nr at 0, arch at 4, args[i] at 16+8i, little-endian)::

    ld arch; jeq X86_64 -> A; jeq I386 -> B; ...; ret KILL_PROCESS   (a foreign ABI: killed)
    A: ld nr; jge X32_SYSCALL_BIT -> x32 rules or the default action
       binary search over ranges of syscall numbers with one decision; a leaf is `ret ACTION`
       or, for a syscall with argument rules, the comparisons then `ret`
    numbers above the highest one the table knows: ENOSYS when the default is an errno (as
    runc does, so that a libc falls back from a syscall newer than the profile)

Per syscall, rules with argument conditions are tried first, in profile order (the conditions
of one rule are ANDed, rules ORed), then the first rule without conditions, then the default
action: libseccomp's "the more specific rule wins". 64-bit comparisons are done on the two
32-bit halves. A conditional jump reaches 255 instructions at most: farther ones go through a
``ja`` (the assembler inserts it).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Dict, List, Optional, Sequence, Tuple, Union

from rootless.errors import RootlessError

COMPILER_VERSION = "1"  # part of the cache key: bump when the generated code changes

# seccomp return values (linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

# audit arches (linux/audit.h)
AUDIT_ARCH = {
    "SCMP_ARCH_X86_64": 0xC000003E,
    "SCMP_ARCH_X86": 0x40000003,
    "SCMP_ARCH_AARCH64": 0xC00000B7,
}
X32_SYSCALL_BIT = 0x40000000
NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64", "arm64": "SCMP_ARCH_AARCH64"}

EPERM, ENOSYS = 1, 38
MAX_INSNS = 4096  # BPF_MAXINSNS

# classic BPF opcodes (linux/filter.h)
LD_W_ABS = 0x20
JMP_JA = 0x05
JEQ_K = 0x15
JGT_K = 0x25
JGE_K = 0x35
ALU_AND_K = 0x54
RET_K = 0x06
OFF_NR, OFF_ARCH = 0, 4

_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")


class SeccompError(RootlessError):
    pass


def _bad(what: str, hint: str = "see docker's seccomp profile format (defaultAction, syscalls[].names/action/args)") -> SeccompError:
    return SeccompError(f"compile seccomp profile: {what}", hint)


def action_value(action: object, errno_ret: object, default_errno: int) -> int:
    """SCMP_ACT_* -> SECCOMP_RET_*; TRACE has no tracer here: the kernel answers ENOSYS, so do we."""
    if action in ("SCMP_ACT_ALLOW",):
        return RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        e = default_errno if errno_ret is None else errno_ret
        if not isinstance(e, int) or isinstance(e, bool) or not 0 <= e <= 4095:
            raise _bad(f"errnoRet `{e}` is not an errno number")
        return RET_ERRNO | e
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return RET_TRAP
    if action == "SCMP_ACT_LOG":
        return RET_LOG
    if action == "SCMP_ACT_TRACE":
        return RET_ERRNO | ENOSYS
    raise _bad(f"unknown action `{action}`", "use SCMP_ACT_ALLOW, ERRNO, KILL, KILL_PROCESS, TRAP, LOG or TRACE")


# --- a tiny assembler with labels ----------------------------------------------------------------

class _Label:
    __slots__ = ()


class _Insn:
    __slots__ = ("code", "k", "jt", "jf")

    def __init__(self, code: int, k: int = 0, jt: Union[_Label, int] = 0, jf: Union[_Label, int] = 0):
        self.code, self.k, self.jt, self.jf = code, k, jt, jf


Item = Union[_Insn, _Label]
_NEXT = 0  # a jump target of 0: the next instruction


def _assemble(items: List[Item]) -> bytes:
    """Resolve labels; a conditional jump farther than 255 goes through a `ja` (repeated until none is)."""
    # Every "next instruction" target becomes a label first, so that inserting code keeps it right.
    norm: List[Item] = []
    for it in items:
        norm.append(it)
        if isinstance(it, _Insn) and it.code in (JEQ_K, JGT_K, JGE_K) and (it.jt == _NEXT or it.jf == _NEXT):
            lab = _Label()
            it.jt = lab if it.jt == _NEXT else it.jt
            it.jf = lab if it.jf == _NEXT else it.jf
            norm.append(lab)
    items = norm
    while True:
        pos: Dict[_Label, int] = {}
        n = 0
        for it in items:
            if isinstance(it, _Label):
                pos[it] = n
            else:
                n += 1
        out: List[Item] = []
        n = 0
        for it in items:
            if isinstance(it, _Insn) and it.code in (JEQ_K, JGT_K, JGE_K) and any(
                    pos[t] - n - 1 > 255 for t in (it.jt, it.jf)):  # type: ignore[index]
                to_t, to_f = _Label(), _Label()
                out += [_Insn(it.code, it.k, to_t, to_f), to_t, _Insn(JMP_JA, 0, it.jt), to_f, _Insn(JMP_JA, 0, it.jf)]
                n += 1
                continue
            out.append(it)
            if isinstance(it, _Insn):
                n += 1
        if len(out) == len(items):
            break
        items = out
    prog = bytearray()
    n = 0
    for it in items:
        if isinstance(it, _Label):
            continue
        if it.code == JMP_JA:
            prog += struct.pack("=HBBI", it.code, 0, 0, pos[it.jt] - n - 1)  # type: ignore[index]
        elif it.code in (JEQ_K, JGT_K, JGE_K):
            jt = pos[it.jt] - n - 1  # type: ignore[index]
            jf = pos[it.jf] - n - 1  # type: ignore[index]
            if not (0 <= jt <= 255 and 0 <= jf <= 255):
                raise AssertionError("unresolved far jump")  # pragma: no cover
            prog += struct.pack("=HBBI", it.code, jt, jf, it.k & 0xFFFFFFFF)
        else:
            prog += struct.pack("=HBBI", it.code, 0, 0, it.k & 0xFFFFFFFF)
        n += 1
    if n > MAX_INSNS:
        raise _bad(f"the program has {n} instructions (the kernel takes {MAX_INSNS} at most)",
                   "use fewer argument rules")
    return bytes(prog)


# --- rules ---------------------------------------------------------------------------------------

Cond = Tuple[int, str, int, int]  # index, op, value, valueTwo
Rule = Tuple[Tuple[Cond, ...], int]  # conditions (ANDed), return value


def _u64(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(f"{what} `{v}` is not an integer")
    if v < 0:
        v &= 0xFFFFFFFFFFFFFFFF  # docker's profiles write -1 style values as uint64 anyway
    if v > 0xFFFFFFFFFFFFFFFF:
        raise _bad(f"{what} `{v}` does not fit in 64 bits")
    return v


def _rules(seccomp: dict, table: Dict[str, int], default_errno: int) -> Dict[int, List[Rule]]:
    by_nr: Dict[int, List[Rule]] = {}
    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _bad("`syscalls` is not a list")
    for i, sc in enumerate(syscalls):
        if not isinstance(sc, dict):
            raise _bad(f"syscalls[{i}] is not an object")
        names = sc.get("names")
        if names is None and sc.get("name"):
            names = [sc["name"]]  # the older single-name form
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _bad(f"syscalls[{i}].names is not a list of names")
        ret = action_value(sc.get("action"), sc.get("errnoRet"), default_errno)
        conds: List[Cond] = []
        for a in sc.get("args") or []:
            if not isinstance(a, dict):
                raise _bad(f"syscalls[{i}].args has an entry that is not an object")
            idx = a.get("index")
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= 5:
                raise _bad(f"syscalls[{i}].args index `{idx}` is not 0-5")
            op = a.get("op")
            if op not in _OPS:
                raise _bad(f"unknown comparison `{op}` in syscalls[{i}]", "use " + ", ".join(_OPS))
            conds.append((idx, op, _u64(a.get("value", 0), "value"), _u64(a.get("valueTwo", 0) or 0, "valueTwo")))
        for name in names:
            nr = table.get(name)
            if nr is not None:  # a name this architecture lacks is skipped (libseccomp does so too)
                by_nr.setdefault(nr, []).append((tuple(conds), ret))
    return by_nr


def _cond(out: List[Item], c: Cond, fail: _Label) -> None:
    """Fall through when ``args[index] op value`` holds (64-bit, unsigned), else jump to ``fail``."""
    idx, op, v, v2 = c
    lo_off, hi_off = 16 + 8 * idx, 20 + 8 * idx
    vhi, vlo = v >> 32, v & 0xFFFFFFFF
    ok = _Label()
    if op == "SCMP_CMP_EQ":
        out += [_Insn(LD_W_ABS, hi_off), _Insn(JEQ_K, vhi, _NEXT, fail),
                _Insn(LD_W_ABS, lo_off), _Insn(JEQ_K, vlo, _NEXT, fail)]
    elif op == "SCMP_CMP_NE":
        out += [_Insn(LD_W_ABS, hi_off), _Insn(JEQ_K, vhi, _NEXT, ok),
                _Insn(LD_W_ABS, lo_off), _Insn(JEQ_K, vlo, fail, _NEXT)]
    elif op == "SCMP_CMP_MASKED_EQ":
        out += [_Insn(LD_W_ABS, hi_off), _Insn(ALU_AND_K, vhi), _Insn(JEQ_K, v2 >> 32 & 0xFFFFFFFF, _NEXT, fail),
                _Insn(LD_W_ABS, lo_off), _Insn(ALU_AND_K, vlo), _Insn(JEQ_K, v2 & 0xFFFFFFFF, _NEXT, fail)]
    elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        last = JGT_K if op == "SCMP_CMP_GT" else JGE_K
        out += [_Insn(LD_W_ABS, hi_off), _Insn(JGT_K, vhi, ok, _NEXT), _Insn(JEQ_K, vhi, _NEXT, fail),
                _Insn(LD_W_ABS, lo_off), _Insn(last, vlo, _NEXT, fail)]
    else:  # LT = not GE, LE = not GT
        last = JGE_K if op == "SCMP_CMP_LT" else JGT_K
        out += [_Insn(LD_W_ABS, hi_off), _Insn(JGT_K, vhi, fail, _NEXT), _Insn(JEQ_K, vhi, _NEXT, ok),
                _Insn(LD_W_ABS, lo_off), _Insn(last, vlo, fail, _NEXT)]
    out.append(ok)


def _leaf(out: List[Item], rules: List[Rule], default: int) -> None:
    """The decision for one syscall number (A holds nr on entry; every path ends in ret)."""
    with_args = [r for r in rules if r[0]]
    plain = [r for r in rules if not r[0]]
    for conds, ret in with_args:
        fail = _Label()
        for c in conds:
            _cond(out, c, fail)
        out.append(_Insn(RET_K, ret))
        out.append(fail)
    out.append(_Insn(RET_K, plain[0][1] if plain else default))


# A decision for a range of numbers: ("ret", value) or ("rules", nr, rules)
Decision = Tuple


def _ranges(by_nr: Dict[int, List[Rule]], default: int, top: int) -> List[Tuple[int, int, Decision]]:
    """[lo, hi] ranges over 0..top: consecutive numbers with the same plain decision are merged."""
    out: List[Tuple[int, int, Decision]] = []
    for nr in range(top + 1):
        rules = by_nr.get(nr)
        if rules and any(r[0] for r in rules):
            d: Decision = ("rules", nr, rules)
        else:
            d = ("ret", rules[0][1] if rules else default)
        if out and d[0] == "ret" and out[-1][2] == d and out[-1][1] == nr - 1:
            out[-1] = (out[-1][0], nr, d)
        else:
            out.append((nr, nr, d))
    return out


def _search(out: List[Item], ranges: List[Tuple[int, int, Decision]], default: int) -> None:
    """A balanced binary search on `nr >= boundary` over ``ranges`` (A holds nr)."""
    if len(ranges) == 1:
        d = ranges[0][2]
        if d[0] == "ret":
            out.append(_Insn(RET_K, d[1]))
        else:
            _leaf(out, d[2], default)
        return
    mid = len(ranges) // 2
    right = _Label()
    out.append(_Insn(JGE_K, ranges[mid][0], right, _NEXT))
    _search(out, ranges[:mid], default)
    out.append(right)
    _search(out, ranges[mid:], default)


def _arch_block(out: List[Item], by_nr: Dict[int, List[Rule]], default: int, above: int, top: int) -> None:
    """Numbers 0..top by the rules; above ``top``: ``above``. A holds nr."""
    hi = _Label()
    out.append(_Insn(JGT_K, top, hi, _NEXT))
    _search(out, _ranges(by_nr, default, top), default)
    out.append(hi)
    out.append(_Insn(RET_K, above))


def compile_program(seccomp: dict, arch: Optional[str] = None) -> bytes:
    """The BPF program (struct sock_filter[], native byte order) for ``seccomp`` on ``arch``."""
    from rootless.linux import syscall_tables as tables

    if not isinstance(seccomp, dict):
        raise _bad("the profile is not a JSON object")
    arch = arch or native_arch()
    default_errno = seccomp.get("defaultErrnoRet")
    if default_errno is None:
        default_errno = EPERM
    default = action_value(seccomp.get("defaultAction"), default_errno, default_errno)
    # A number above every one the table knows: ENOSYS when the default denies with an errno.
    above = (RET_ERRNO | ENOSYS) if default & 0xFFFF0000 == RET_ERRNO else default
    arches = list(seccomp.get("architectures") or [])
    if not all(isinstance(a, str) for a in arches):
        raise _bad("`architectures` is not a list of SCMP_ARCH_* names")
    wanted = [arch] + [a for a in arches if a != arch]
    out: List[Item] = [_Insn(LD_W_ABS, OFF_ARCH)]
    blocks: List[Tuple[_Label, str, bool]] = []
    x32 = "SCMP_ARCH_X32" in wanted and arch == "SCMP_ARCH_X86_64"
    for a in wanted:
        if a in AUDIT_ARCH and a in tables.TABLES:
            lab = _Label()
            blocks.append((lab, a, a == "SCMP_ARCH_X86_64"))
            out.append(_Insn(JEQ_K, AUDIT_ARCH[a], lab, _NEXT))
    if not blocks or blocks[0][1] != arch:
        raise _bad(f"no system call table for `{arch}`", "use --security-opt seccomp=unconfined on this machine")
    out.append(_Insn(RET_K, RET_KILL_PROCESS))  # an ABI the profile does not list (e.g. int 0x80 without x86)
    for lab, a, is_x86_64 in blocks:
        table = tables.TABLES[a]
        out.append(lab)
        out.append(_Insn(LD_W_ABS, OFF_NR))
        if is_x86_64:
            # The x32 ABI is x86_64's arch with bit 30 set in nr: its own table, or denied.
            x32_lab = _Label()
            out.append(_Insn(JGE_K, X32_SYSCALL_BIT, x32_lab, _NEXT))
            _arch_block(out, _rules(seccomp, table, default_errno), default, above, max(table.values()))
            out.append(x32_lab)
            if x32:
                out.append(_Insn(ALU_AND_K, ~X32_SYSCALL_BIT & 0xFFFFFFFF))  # the table has numbers without the bit
                _arch_block(out, _rules(seccomp, tables.X32, default_errno), default, above, max(tables.X32.values()))
            else:
                out.append(_Insn(RET_K, default))
        else:
            _arch_block(out, _rules(seccomp, table, default_errno), default, above, max(table.values()))
    return _assemble(out)


def native_arch() -> str:
    machine = os.uname().machine
    try:
        return NATIVE[machine]
    except KeyError:
        raise SeccompError(f"apply a seccomp profile: no system call table for `{machine}`",
                           "use --security-opt seccomp=unconfined (or seccomp-profile = \"unconfined\") here")


def _canonical(seccomp: dict, arch: str) -> bytes:
    """What a cached program must have been compiled from, byte for byte."""
    blob = json.dumps(seccomp, sort_keys=True, separators=(",", ":"))
    return f"{COMPILER_VERSION}\0{arch}\0{blob}".encode()


# A cache file: magic, len(source) as 4 bytes, the source (_canonical), crc32(program), the program.
# The whole source is compared, not a hash of it (no collision can hand a container another
# profile's filter; and no hashlib import, ~5 ms with OpenSSL, on the way to every container).
_MAGIC = b"rootless-bpf2\n"


def program(seccomp: dict, cache_dir: Optional[str] = None) -> bytes:
    """The program for ``seccomp`` on this machine, from ``cache_dir`` when it was compiled before.

    The cache (``<cache>/rootless/seccomp/<crc32>-<length>.bpf`` by default) is keyed by the
    profile as settled for the container (capabilities included), the architecture and the
    compiler's version; written atomically; a file that does not check out is compiled again.
    """
    import zlib

    arch = native_arch()
    src = _canonical(seccomp, arch)
    if cache_dir is None:
        from rootless import paths

        cache_dir = os.path.join(paths.cache_home(), "rootless", "seccomp")
    path = os.path.join(cache_dir, f"{zlib.crc32(src):08x}-{len(src)}.bpf")
    head = len(_MAGIC) + 4
    try:
        with open(path, "rb") as f:
            data = f.read(head + len(src) + 4 + MAX_INSNS * 8 + 1)
        n = int.from_bytes(data[len(_MAGIC):head], "little")
        prog = data[head + n + 4:]
        if (data[:len(_MAGIC)] == _MAGIC and data[head:head + n] == src and prog and len(prog) % 8 == 0
                and len(prog) <= MAX_INSNS * 8 and zlib.crc32(prog).to_bytes(4, "little") == data[head + n:head + n + 4]):
            return prog
    except OSError:
        pass
    prog = compile_program(seccomp, arch)
    try:
        from rootless import paths

        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        blob = _MAGIC + len(src).to_bytes(4, "little") + src + zlib.crc32(prog).to_bytes(4, "little") + prog
        paths.atomic_write(path, blob, mode=0o600, durable=False)
    except OSError:
        pass  # a cache we cannot write costs a compile per container, nothing else
    return prog


def instructions(prog: bytes) -> List[Tuple[int, int, int, int]]:
    """(code, jt, jf, k) of each instruction: for tests and `debug` output."""
    return [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]


def names_for(arch: str) -> Sequence[str]:
    from rootless.linux import syscall_tables as tables

    return sorted(tables.TABLES.get(arch, {}))
