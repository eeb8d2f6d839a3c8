"""Docker's resource-limit flags, parsed and validated into one frozen ``Limits`` value.

``Limits`` holds what the user asked for, in docker's units (bytes, CFS microseconds, cpu.shares,
blkio weight); ``cgroup_files()`` turns it into cgroup v2 file writes the way crun and runc do
(cpu.shares -> cpu.weight, blkio weight -> io.bfq.weight / io.weight, memory-swap -> memory.swap.max).
Validation messages are docker's own, so scripts that match on them keep working.

Pure code: no kernel access, no imports beyond the standard library, cheap to import on `run`.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from rootless.errors import UsageError

if TYPE_CHECKING:
    import argparse

MIN_MEMORY = 6 * 1024 * 1024  # docker's linuxMinMemory ("Minimum memory limit allowed is 6MB")
DEFAULT_CPU_PERIOD = 100000  # microseconds, the kernel's and docker's default CFS period

_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def size_flag(value: str, flag: str) -> int:
    """A size flag's value (go-units RAMInBytes), refused as docker words it."""
    from rootless.units import parse_size

    try:
        return parse_size(value)
    except ValueError:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: invalid size: \'{value}\'',
                         "use a number with an optional unit: b, k, m or g (e.g. 512m)")


def _int(value: Any, flag: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseInt: parsing "{value}": invalid syntax',
                         f"{flag} takes a whole number")


def parse_cpuset(value: str, flag: str) -> str:
    """`0-3,5`: validated, returned normalised (no blanks)."""
    v = value.replace(" ", "")
    if not _CPUSET.match(v) or any(int(a) > int(b) for a, _, b in
                                   (r.partition("-") for r in v.split(",") if "-" in r)):
        what = "cpus" if flag.endswith("cpus") else "mems"
        raise UsageError(f"Invalid value {value} for cpuset {what}", "use a list such as `0-2,4`")
    return v


def cpuset_members(value: str) -> List[int]:
    out: List[int] = []
    for r in value.split(","):
        a, _, b = r.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


@dataclass(frozen=True)
class Limits:
    """What the user asked for; None = not asked (keep the kernel's default / the current value).

    memory, memory_swap, memory_reservation: bytes; memory_swap is docker's memory+swap total,
    -1 = unlimited swap. nano_cpus: --cpus times 10**9 (docker's NanoCPUs; a quota over the default
    100 ms period). cpu_quota/cpu_period: CFS microseconds (--cpu-quota, -1 = unlimited). cpu_shares: docker's 2..262144; cpu_weight: cgroup v2's 1..10000 (podman's
    --cpu-weight). pids_limit: -1 = unlimited. blkio_weight: 10..1000.
    """

    memory: Optional[int] = None
    memory_swap: Optional[int] = None
    memory_reservation: Optional[int] = None
    nano_cpus: Optional[int] = None
    cpu_quota: Optional[int] = None
    cpu_period: Optional[int] = None
    cpu_shares: Optional[int] = None
    cpu_weight: Optional[int] = None
    cpuset_cpus: Optional[str] = None
    cpuset_mems: Optional[str] = None
    pids_limit: Optional[int] = None
    blkio_weight: Optional[int] = None

    empty: ClassVar[Limits]

    # -- what was asked --------------------------------------------------------------------------
    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    @property
    def is_empty(self) -> bool:
        return not self

    def flags(self) -> List[str]:
        """The docker flags this value came from, for error messages (`--memory`, `--cpus`)."""
        names = {"memory": "--memory", "memory_swap": "--memory-swap", "memory_reservation": "--memory-reservation",
                 "nano_cpus": "--cpus", "cpu_quota": "--cpu-quota", "cpu_period": "--cpu-period", "cpu_shares": "--cpu-shares",
                 "cpu_weight": "--cpu-weight", "cpuset_cpus": "--cpuset-cpus", "cpuset_mems": "--cpuset-mems",
                 "pids_limit": "--pids-limit", "blkio_weight": "--blkio-weight"}
        return [names[f.name] for f in fields(self) if getattr(self, f.name) is not None]

    def controllers(self) -> List[str]:
        """The cgroup v2 controllers needed to enforce this value."""
        need = []
        if self.memory is not None or self.memory_swap is not None or self.memory_reservation is not None:
            need.append("memory")
        if any(v is not None for v in (self.nano_cpus, self.cpu_quota, self.cpu_period, self.cpu_shares, self.cpu_weight)):
            need.append("cpu")
        if self.cpuset_cpus is not None or self.cpuset_mems is not None:
            need.append("cpuset")
        if self.pids_limit is not None:
            need.append("pids")
        if self.blkio_weight is not None:
            need.append("io")
        return need

    @property
    def cpus(self) -> Optional[float]:
        """The CPU limit as a number of CPUs, or None when unlimited/unset."""
        if self.nano_cpus is not None:
            return self.nano_cpus / 1e9
        if self.cpu_quota is None or self.cpu_quota < 0:
            return None
        return self.cpu_quota / (self.cpu_period or DEFAULT_CPU_PERIOD)

    # -- conversions (crun/runc) -----------------------------------------------------------------
    def effective_cpu_weight(self) -> Optional[int]:
        if self.cpu_weight is not None:
            return self.cpu_weight
        if self.cpu_shares is not None:
            return shares_to_weight(self.cpu_shares)
        return None

    def swap_max(self) -> Optional[str]:
        """memory.swap.max: docker's memory-swap is memory+swap; unset with --memory = as much swap as memory."""
        if self.memory_swap is not None:
            if self.memory_swap < 0:
                return "max"
            return str(max(self.memory_swap - (self.memory or 0), 0))
        if self.memory is not None:
            return str(self.memory)
        return None

    def cgroup_files(self, io_file: str = "io.weight") -> List[Tuple[str, str]]:
        """(file, value) writes for a cgroup v2 directory, in a safe order.

        ``io_file`` is "io.bfq.weight" when the kernel has BFQ (takes the blkio weight as is), else
        "io.weight" (1..10000, converted like runc's ConvertBlkIOToIOWeightValue).
        """
        out: List[Tuple[str, str]] = []
        if self.cpuset_cpus is not None:
            out.append(("cpuset.cpus", self.cpuset_cpus))
        if self.cpuset_mems is not None:
            out.append(("cpuset.mems", self.cpuset_mems))
        if self.memory_reservation is not None:
            out.append(("memory.low", str(self.memory_reservation)))
        if self.memory is not None:
            out.append(("memory.max", str(self.memory)))
        swap = self.swap_max()
        if swap is not None:
            out.append(("memory.swap.max", swap))
        if self.nano_cpus is not None:
            quota = max(self.nano_cpus * DEFAULT_CPU_PERIOD // 10 ** 9, 1000)
            out.append(("cpu.max", f"{quota} {DEFAULT_CPU_PERIOD}"))
        elif self.cpu_quota is not None or self.cpu_period is not None:
            quota = "max" if self.cpu_quota is None or self.cpu_quota < 0 else str(self.cpu_quota)
            out.append(("cpu.max", f"{quota} {self.cpu_period or DEFAULT_CPU_PERIOD}"))
        weight = self.effective_cpu_weight()
        if weight is not None:
            out.append(("cpu.weight", str(weight)))
        if self.pids_limit is not None:
            out.append(("pids.max", "max" if self.pids_limit <= 0 else str(self.pids_limit)))
        if self.blkio_weight is not None:
            if io_file == "io.bfq.weight":
                out.append((io_file, str(self.blkio_weight)))
            else:
                out.append(("io.weight", f"default {1 + (self.blkio_weight - 10) * 9999 // 990}"))
        return out

    # -- combining and persisting ----------------------------------------------------------------
    def merged(self, update: Limits, ncpus: Optional[int] = None) -> Limits:
        """`docker update`: the fields given in ``update`` replace ours; the result is re-validated."""
        changes = {f.name: getattr(update, f.name) for f in fields(update) if getattr(update, f.name) is not None}
        # docker's daemon/update_linux.go: NanoCPUs and the CFS pair exclude each other across updates
        if update.nano_cpus is not None:
            for name, label in (("cpu_period", "CPU Period"), ("cpu_quota", "CPU Quota")):
                if getattr(self, name) is not None and getattr(update, name) is None:
                    raise UsageError(f"Conflicting options: Nano CPUs cannot be updated as {label} has already been set",
                                     f"update with --{name.replace('_', '-')} instead of --cpus")
        for name, label in (("cpu_period", "CPU Period"), ("cpu_quota", "CPU Quota")):
            if getattr(update, name) is not None and self.nano_cpus is not None and update.nano_cpus is None:
                raise UsageError(f"Conflicting options: {label} cannot be updated as NanoCPUs has already been set",
                                 "update with --cpus instead")
        if (self.memory_swap is not None and update.memory is not None and update.memory_swap is None
                and self.memory_swap > 0 and update.memory > self.memory_swap):
            raise UsageError("Memory limit should be smaller than already set memoryswap limit, "
                             "update the memoryswap at the same time",
                             "pass --memory-swap too (or -1 for unlimited swap)")
        new = replace(self, **changes)
        new.validate(ncpus)
        return new

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    # -- validation (docker's daemon/daemon_unix.go verifyPlatformContainerResources) ------------
    def validate(self, ncpus: Optional[int] = None) -> None:
        if self.memory is not None and 0 < self.memory < MIN_MEMORY:
            raise UsageError("Minimum memory limit allowed is 6MB", "use --memory 6m or more")
        if self.memory_swap is not None and self.memory_swap > 0:
            if self.memory is None or self.memory <= 0:
                raise UsageError("You should always set the Memory limit when using Memoryswap limit, see usage",
                                 "add --memory (--memory-swap is memory plus swap)")
            if self.memory_swap < self.memory:
                raise UsageError("Minimum memoryswap limit should be larger than memory limit, see usage",
                                 "--memory-swap is memory plus swap: make it at least --memory, or -1 for unlimited")
        if self.memory_reservation is not None and self.memory_reservation > 0:
            if self.memory_reservation < MIN_MEMORY:
                raise UsageError("Minimum memory reservation allowed is 6MB", "use --memory-reservation 6m or more")
            if self.memory is not None and self.memory > 0 and self.memory < self.memory_reservation:
                raise UsageError("Minimum memory limit can not be less than memory reservation limit, see usage",
                                 "make --memory-reservation smaller than --memory")
        if self.cpu_period is not None and not 1000 <= self.cpu_period <= 1000000:
            raise UsageError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
                             "use a --cpu-period between 1000 and 1000000 microseconds")
        if self.cpu_quota is not None and 0 <= self.cpu_quota < 1000:
            raise UsageError("CPU cfs quota can not be less than 1ms (i.e. 1000)",
                             "use a --cpu-quota of 1000 microseconds or more (or -1 for unlimited)")
        if self.cpu_shares is not None and not 2 <= self.cpu_shares <= 262144:
            raise UsageError(f"invalid --cpu-shares {self.cpu_shares}: the range is 2 to 262144",
                             "1024 is the default share; 512 is half of it")
        if self.cpu_weight is not None and not 1 <= self.cpu_weight <= 10000:
            raise UsageError(f"invalid --cpu-weight {self.cpu_weight}: the range is 1 to 10000",
                             "100 is the default weight")
        if self.nano_cpus is not None and (self.cpu_period is not None or self.cpu_quota is not None):
            which = "Period" if self.cpu_period is not None else "Quota"
            raise UsageError(f"Conflicting options: Nano CPUs and CPU {which} cannot both be set",
                             "use either --cpus or --cpu-period/--cpu-quota")
        if self.nano_cpus is not None and self.nano_cpus < 10 ** 7:
            raise UsageError(f"Range of CPUs is from 0.01 to {ncpus or _ncpus()}.00, as there are only "
                             f"{ncpus or _ncpus()} CPUs available", "use --cpus 0.01 or more")
        if self.cpu_shares is not None and self.cpu_weight is not None:
            raise UsageError("Conflicting options: --cpu-shares and --cpu-weight cannot both be set",
                             "use one of them (--cpu-weight is cgroup v2's unit)")
        if self.blkio_weight is not None and not 10 <= self.blkio_weight <= 1000:
            raise UsageError("Range of blkio weight is from 10 to 1000", "500 is the default weight")
        if self.pids_limit is not None and self.pids_limit < -1:
            raise UsageError(f"invalid --pids-limit {self.pids_limit}", "use a positive number, or -1 for unlimited")
        if self.cpuset_cpus is not None:
            parse_cpuset(self.cpuset_cpus, "--cpuset-cpus")
        if self.cpuset_mems is not None:
            parse_cpuset(self.cpuset_mems, "--cpuset-mems")
        n = ncpus if ncpus is not None else _ncpus()
        if self.nano_cpus is not None and self.nano_cpus > n * 10 ** 9:
            raise UsageError(f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available",
                             f"use --cpus {n} or less")


Limits.empty = Limits()


def _ncpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def shares_to_weight(shares: int) -> int:
    """crun/runc: cpu.shares 2..262144 -> cpu.weight 1..10000 (1024 -> 39)."""
    return 1 + ((shares - 2) * 9999) // 262142


def parse(
    *,
    memory: Optional[str] = None,
    memory_swap: Optional[str] = None,
    memory_reservation: Optional[str] = None,
    cpus: Optional[str] = None,
    cpu_period: Optional[Any] = None,
    cpu_quota: Optional[Any] = None,
    cpu_shares: Optional[Any] = None,
    cpu_weight: Optional[Any] = None,
    cpuset_cpus: Optional[str] = None,
    cpuset_mems: Optional[str] = None,
    pids_limit: Optional[Any] = None,
    blkio_weight: Optional[Any] = None,
    ncpus: Optional[int] = None,
) -> Limits:
    """Docker's flag values (strings, as argparse gives them) -> a validated ``Limits``.

    Zero means "not set" for the flags where docker treats it so (--memory 0, --cpus 0,
    --cpu-shares 0, --blkio-weight 0, --pids-limit 0).
    """
    kw: Dict[str, Any] = {}
    if memory is not None:
        v = size_flag(memory, "--memory")
        if v:
            kw["memory"] = v
    if memory_swap is not None:
        v = -1 if memory_swap.strip() == "-1" else size_flag(memory_swap, "--memory-swap")
        if v:
            kw["memory_swap"] = v
    if memory_reservation is not None:
        v = size_flag(memory_reservation, "--memory-reservation")
        if v:
            kw["memory_reservation"] = v
    if cpus is not None:
        from decimal import Decimal, InvalidOperation

        try:
            d = Decimal(str(cpus).strip())
            if not d.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise UsageError(f'invalid argument "{cpus}" for "--cpus" flag: failed to parse {cpus} as a rational number',
                             "use a decimal number of CPUs, e.g. 0.5")
        if d < 0:
            raise UsageError(f'invalid argument "{cpus}" for "--cpus" flag: Range of CPUs is from 0.01 to the number of CPUs',
                             "use a positive number of CPUs, e.g. 0.5")
        if d != 0:
            nano = d * Decimal(10 ** 9)
            if nano != nano.to_integral_value():
                raise UsageError(f'invalid argument "{cpus}" for "--cpus" flag: value is too precise',
                                 "use at most nine decimal places")
            kw["nano_cpus"] = int(nano)
    if cpu_period not in (None, "", 0, "0"):
        kw["cpu_period"] = _int(cpu_period, "--cpu-period")
    if cpu_quota not in (None, "", 0, "0"):
        kw["cpu_quota"] = _int(cpu_quota, "--cpu-quota")
    if cpu_shares not in (None, "", 0, "0"):
        kw["cpu_shares"] = _int(cpu_shares, "--cpu-shares")
    if cpu_weight not in (None, "", 0, "0"):
        kw["cpu_weight"] = _int(cpu_weight, "--cpu-weight")
    if cpuset_cpus not in (None, ""):
        kw["cpuset_cpus"] = parse_cpuset(cpuset_cpus, "--cpuset-cpus")
    if cpuset_mems not in (None, ""):
        kw["cpuset_mems"] = parse_cpuset(cpuset_mems, "--cpuset-mems")
    if pids_limit not in (None, "", 0, "0"):
        kw["pids_limit"] = _int(pids_limit, "--pids-limit")
    if blkio_weight not in (None, "", 0, "0"):
        kw["blkio_weight"] = _int(blkio_weight, "--blkio-weight")
    lim = Limits(**kw)
    lim.validate(ncpus)
    return lim


# -- argparse glue, shared by run, create and update ------------------------------------------------
from rootless.limitflags import (  # noqa: E402,F401  (the flags live apart: cheap to import)
    _FLAGS,
    add_arguments,
)


def from_args(args: argparse.Namespace, ncpus: Optional[int] = None) -> Limits:
    """The ``Limits`` given on a command line parsed with ``add_arguments``."""
    return parse(ncpus=ncpus, **{dest: getattr(args, dest, None) for _, _, dest, _ in _FLAGS})
