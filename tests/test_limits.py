"""Docker's resource flags -> Limits: parsing, docker's validation messages, cgroup v2 conversions."""

import argparse

import pytest

from rootless import limits
from rootless.errors import UsageError
from rootless.limits import Limits

pytestmark = pytest.mark.nosubuid
M = 1 << 20


def parse(**kw):
    kw.setdefault("ncpus", 2)
    return limits.parse(**kw)


@pytest.mark.parametrize("text, want", [
    ("32m", 32 * M), ("32M", 32 * M), ("32mb", 32 * M), ("32MiB", 32 * M), ("1g", 1 << 30), ("1.5g", 3 << 29),
    ("6291456", 6291456), ("8192k", 8 * M), ("7 MB", 7 * M),
])
def test_sizes(text, want):
    assert parse(memory=text).memory == want


def test_nothing_asked_is_empty():
    assert parse() == Limits.empty and not Limits.empty and Limits.empty.is_empty
    assert parse(memory="0", cpus="0", cpu_shares="0", pids_limit="0", blkio_weight="0") == Limits.empty
    assert Limits.empty.cgroup_files() == [] and Limits.empty.flags() == []


@pytest.mark.parametrize("kw, message", [
    ({"memory": "5m"}, "Minimum memory limit allowed is 6MB"),
    ({"memory": "32x"}, "invalid argument \"32x\" for \"--memory\" flag: invalid size: '32x'"),
    ({"memory_swap": "64m"}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"memory": "64m", "memory_swap": "32m"}, "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"memory_reservation": "1m"}, "Minimum memory reservation allowed is 6MB"),
    ({"memory": "32m", "memory_reservation": "64m"},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"cpus": "3"}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"cpus": "0.001"}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"cpus": "abc"}, 'invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number'),
    ({"cpus": "0.0000000001"}, "value is too precise"),
    ({"cpus": "1", "cpu_period": "50000"}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"cpus": "1", "cpu_quota": "50000"}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"cpu_period": "999"}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"cpu_quota": "500"}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"cpu_shares": "1"}, "invalid --cpu-shares 1: the range is 2 to 262144"),
    ({"cpu_weight": "10001"}, "invalid --cpu-weight 10001: the range is 1 to 10000"),
    ({"blkio_weight": "5"}, "Range of blkio weight is from 10 to 1000"),
    ({"cpuset_cpus": "0-"}, "Invalid value 0- for cpuset cpus"),
    ({"cpuset_cpus": "3-1"}, "Invalid value 3-1 for cpuset cpus"),
    ({"cpuset_mems": "x"}, "Invalid value x for cpuset mems"),
    ({"pids_limit": "ten"}, 'invalid argument "ten" for "--pids-limit" flag'),
])
def test_docker_validation_messages(kw, message):
    with pytest.raises(UsageError) as e:
        parse(**kw)
    assert message in e.value.message
    assert e.value.hint and e.value.exit_code == 125


def test_cgroup_files_for_the_common_flags():
    lim = parse(memory="32m", cpus="0.2", pids_limit="20")
    assert lim.flags() == ["--memory", "--cpus", "--pids-limit"]
    assert lim.controllers() == ["memory", "cpu", "pids"]
    assert dict(lim.cgroup_files()) == {
        "memory.max": str(32 * M),
        "memory.swap.max": str(32 * M),  # docker: unset --memory-swap = as much swap as memory
        "cpu.max": "20000 100000",
        "pids.max": "20",
    }
    assert lim.cpus == pytest.approx(0.2)


def test_swap_semantics():
    assert dict(parse(memory="32m", memory_swap="32m").cgroup_files())["memory.swap.max"] == "0"
    assert dict(parse(memory="32m", memory_swap="96m").cgroup_files())["memory.swap.max"] == str(64 * M)
    assert dict(parse(memory="32m", memory_swap="-1").cgroup_files())["memory.swap.max"] == "max"


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 39), (512, 20), (262144, 10000)])
def test_cpu_shares_to_weight_like_crun(shares, weight):
    assert limits.shares_to_weight(shares) == weight
    assert dict(parse(cpu_shares=str(shares)).cgroup_files())["cpu.weight"] == str(weight)


def test_cpu_weight_quota_period_pids_unlimited():
    files = dict(parse(cpu_weight="250", cpu_period="50000", cpu_quota="25000", pids_limit="-1").cgroup_files())
    assert files == {"cpu.weight": "250", "cpu.max": "25000 50000", "pids.max": "max"}
    assert dict(parse(cpu_quota="-1").cgroup_files())["cpu.max"] == "max 100000"


def test_blkio_weight_to_io_files():
    lim = parse(blkio_weight="500")
    assert lim.controllers() == ["io"]
    assert lim.cgroup_files() == [("io.weight", f"default {1 + 490 * 9999 // 990}")]
    assert lim.cgroup_files("io.bfq.weight") == [("io.bfq.weight", "500")]
    assert parse(blkio_weight="10").cgroup_files() == [("io.weight", "default 1")]
    assert parse(blkio_weight="1000").cgroup_files() == [("io.weight", "default 10000")]


def test_cpuset_and_reservation():
    lim = parse(cpuset_cpus="0, 1", cpuset_mems="0", memory_reservation="16m")
    assert lim.cpuset_cpus == "0,1" and lim.controllers() == ["memory", "cpuset"]
    assert ("memory.low", str(16 * M)) in lim.cgroup_files()
    assert limits.cpuset_members("0-2,5") == [0, 1, 2, 5]


def test_update_merges_and_revalidates():
    base = parse(memory="32m", pids_limit="20", cpus="1")
    new = base.merged(parse(memory="64m"), ncpus=2)
    assert new.memory == 64 * M and new.pids_limit == 20 and new.nano_cpus == 10 ** 9
    assert base.merged(Limits.empty, ncpus=2) == base
    with pytest.raises(UsageError, match="Memory limit should be smaller than already set memoryswap limit"):
        parse(memory="32m", memory_swap="64m").merged(parse(memory="128m"), ncpus=2)
    with pytest.raises(UsageError, match="CPU Quota cannot be updated as NanoCPUs has already been set"):
        base.merged(parse(cpu_quota="50000"), ncpus=2)
    with pytest.raises(UsageError, match="Nano CPUs cannot be updated as CPU Period has already been set"):
        parse(cpu_period="50000").merged(parse(cpus="1"), ncpus=2)


def test_dict_round_trip():
    lim = parse(memory="32m", cpus="0.5", cpuset_cpus="0", blkio_weight="300")
    assert Limits.from_dict(lim.to_dict()) == lim
    assert Limits.from_dict({"memory": 1 << 30, "future_field": 1}).memory == 1 << 30


def test_argparse_glue():
    p = argparse.ArgumentParser()
    limits.add_arguments(p)
    args = p.parse_args(["-m", "32m", "--cpus", "0.5", "--pids-limit", "20", "-c", "512"])
    assert limits.from_args(args, ncpus=2) == Limits(memory=32 * M, nano_cpus=5 * 10 ** 8, pids_limit=20, cpu_shares=512)
    assert limits.from_args(p.parse_args([]), ncpus=2) == Limits.empty
