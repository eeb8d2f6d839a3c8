"""docker's resource flags for `run`, `create` and `update` (parsed by rootless.limits).

Apart from rootless.limits so that building the `run` parser costs no dataclass creation.
"""

from __future__ import annotations

_FLAGS = (
    ("-m", "--memory", "memory", "memory limit (e.g. 512m, 1g)"),
    (None, "--memory-swap", "memory_swap", "memory plus swap limit; -1 = unlimited swap"),
    (None, "--memory-reservation", "memory_reservation", "memory soft limit (memory.low)"),
    (None, "--cpus", "cpus", "number of CPUs (e.g. 1.5)"),
    (None, "--cpu-period", "cpu_period", "CFS period in microseconds"),
    (None, "--cpu-quota", "cpu_quota", "CFS quota in microseconds"),
    ("-c", "--cpu-shares", "cpu_shares", "relative CPU weight (cgroup v1 shares, converted to cpu.weight)"),
    (None, "--cpu-weight", "cpu_weight", "relative CPU weight, 1..10000 (cgroup v2)"),
    (None, "--cpuset-cpus", "cpuset_cpus", "CPUs allowed (e.g. 0-3, 0,1)"),
    (None, "--cpuset-mems", "cpuset_mems", "memory nodes allowed (e.g. 0-3, 0,1)"),
    (None, "--pids-limit", "pids_limit", "maximum number of processes; -1 = unlimited"),
    (None, "--blkio-weight", "blkio_weight", "relative block I/O weight, 10..1000"),
)


def add_arguments(parser) -> None:
    """Add docker's resource flags to a `run`, `create` or `update` parser (all strings, default None)."""
    for short, long, dest, help_ in _FLAGS:
        names = [n for n in (short, long) if n]
        parser.add_argument(*names, dest=dest, default=None, metavar=dest.upper(), help=help_)




def given(args) -> bool:
    """Whether any resource flag was given on this command line."""
    return any(getattr(args, dest, None) is not None for _, _, dest, _ in _FLAGS)
