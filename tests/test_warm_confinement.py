"""The warm server (rootless/warm.py) must not let a confined client escape its confinement
(issue 11 item 7): a Landlock sandbox, a seccomp filter of its own and its rlimits follow the
command, or the command runs cold. Sandboxes are made by tests/fixtures/sandbox_warm.py (ctypes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zipfile

import pytest

from enginehelp import wait_for, warm_wanted
from test_warm import server_pids

pytestmark = [
    pytest.mark.usefixtures("clean_data_root"),
    pytest.mark.skipif(not os.environ.get("ROOTLESS_TEST_PYZ"), reason="the warm server serves the built .pyz only"),
    pytest.mark.skipif(not warm_wanted(), reason="ROOTLESS_TEST_WARM=0: this run is the cold one"),
]

SANDBOX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "sandbox_warm.py")


def servers(d: str):
    """{pid: /proc/PID/status} of the live servers with a pid file in ``d``."""
    out = {}
    for pid in server_pids(d):
        try:
            with open(f"/proc/{pid}/status") as f:
                out[pid] = f.read()
        except OSError:
            pass
    return out


def sandboxed(rl, opts, *args, env=None):
    e = dict(rl.env, ROOTLESS_DEBUG="1", **(env or {}))
    r = subprocess.run([sys.executable, SANDBOX] + list(opts) + ["--"] + rl.argv(*args), env=e,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if r.returncode == 77:
        pytest.skip(r.stderr.strip())
    return r


def test_a_landlocked_client_is_not_served_by_a_server_outside_its_sandbox(rl, bb, own_warm, tmp_path):
    """A server started outside any sandbox with no_new_privs (as a sandboxed client has it) must
    not run a Landlock-sandboxed client's command: that would write where the sandbox forbids."""
    for _ in range(2):  # the first starts a no_new_privs server, outside the sandbox
        r = subprocess.run([sys.executable, SANDBOX, "--nnp", "--"] + rl.argv("ps", "-a"), env=rl.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert r.returncode == 0, r
    wait_for(lambda: any("NoNewPrivs:\t1" in s for s in servers(own_warm).values()), what="a no_new_privs server")
    forbidden = tmp_path / "forbidden"
    forbidden.mkdir()
    allowed = [rl.env["HOME"], rl.env["XDG_RUNTIME_DIR"], rl.env["XDG_CACHE_HOME"], own_warm, "/dev"]
    opts = [a for d in allowed for a in ("--landlock-write", d)]
    # save: a command that needs no user namespace (newuidmap, setuid, does nothing under no_new_privs)
    r = sandboxed(rl, opts, "save", "-o", str(forbidden / "out.tar"), bb)
    assert not (forbidden / "out.tar").exists(), r  # the sandbox holds: the command ran in it
    assert r.returncode != 0 and "Permission denied" in r.stderr, r  # ROOTLESS_DEBUG also prints a traceback
    assert "cannot be read (a Landlock sandbox?)" in r.stderr, r  # ROOTLESS_DEBUG says why it ran here
    # the same sandbox may still write where it is allowed to (and it ran cold: a server's command would too)
    r = sandboxed(rl, opts, "save", "-o", os.path.join(rl.env["HOME"], "ok.tar"), bb)
    assert r.returncode == 0 and os.path.getsize(os.path.join(rl.env["HOME"], "ok.tar")) > 0, r


def test_a_client_under_another_seccomp_filter_is_not_served(rl, bb, own_warm, tmp_path):
    """Two seccomp stacks of the same depth look alike in /proc: a client under a filter that
    forbids mkdir must not be served by a server started under an allow-all filter."""
    rl.ok("volume", "ls")
    for _ in range(2):
        assert sandboxed(rl, ["--seccomp", "allow"], "ps").returncode == 0
    try:  # the old code started a server under the allow-all filter; it must not now
        wait_for(lambda: any("Seccomp:\t2" in s for s in servers(own_warm).values()), timeout=5)
        filtered_server = True
    except AssertionError:
        filtered_server = False
    # volume create: mkdir(2) of its folder, and no user namespace (newuidmap does nothing under no_new_privs)
    r = sandboxed(rl, ["--seccomp", "deny-mkdir"], "volume", "create", "made")
    assert r.returncode != 0 and "made" not in rl.ok("volume", "ls").stdout, r  # the filter held: mkdir refused
    assert "runs under a seccomp filter" in r.stderr, r
    assert not filtered_server


FORGED = r"""
import os, resource, re, sys, zipfile
pyz, build_id, target = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[0:1] = [target]  # as the .pyz's own start does: the same server key
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # ulimit -H -f 1024
real = resource.getrlimit
resource.getrlimit = lambda n: (resource.RLIM_INFINITY,) * 2 if n == resource.RLIMIT_FSIZE else real(n)  # the lie
from rootless.warm import try_client
rc = try_client(build_id, [pyz] + sys.argv[4:])
sys.stdout.flush()
sys.stderr.write(f"forged client: {'cold' if rc is None else rc}\n")
sys.exit(99 if rc is None else rc)
"""


def test_the_command_gets_the_rlimits_the_client_has_not_those_it_claims(rl, bb, tmp_path):
    """A client with a 1 MiB hard file-size limit that reports none: the command in the server
    must have the client's real limit (from /proc), as it would have run cold."""
    rl.ok("ps")
    wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(rl.env["ROOTLESS_WARM_DIR"])), what="the server")
    pyz = os.environ["ROOTLESS_TEST_PYZ"]
    with zipfile.ZipFile(pyz) as z:
        build_id = re.search(rb'BUILD_ID = "([0-9a-f]+)"', z.read("__main__.py")).group(1).decode()
    target = os.path.join(rl.env["XDG_CACHE_HOME"], "rootless", "pyz-" + build_id)
    assert os.path.isdir(target)
    vol = tmp_path / "vol"
    vol.mkdir()
    cmd = ["run", "--rm", "-v", f"{vol}:/x", bb, "sh", "-c",
           "grep 'Max file size' /proc/self/limits; dd if=/dev/zero of=/x/big bs=1024 count=2048"]
    r = subprocess.run([sys.executable, "-c", FORGED, pyz, build_id, target] + cmd, env=rl.env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert "forged client: cold" not in r.stderr, r  # served by the server (the limit can be matched)
    assert re.search(r"Max file size\s+1048576\s+1048576", r.stdout), r  # the client's limit, not the claim
    assert r.returncode != 0, r  # dd: File too large (or SIGXFSZ), as cold
    assert os.path.getsize(vol / "big") <= 1 << 20, r


def test_a_sandboxed_client_keeps_a_server_of_its_own(rl, own_warm):
    """A no_new_privs client that started its server itself is served by it (the proof is readable)."""
    for _ in range(3):
        r = sandboxed(rl, ["--nnp"], "ps")
        assert r.returncode == 0, r
        time.sleep(0.5)
    wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(own_warm)), what="the server")
    r = sandboxed(rl, ["--nnp"], "ps")
    assert r.returncode == 0 and "debug:" not in r.stderr, r
