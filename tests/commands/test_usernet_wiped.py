"""XDG_RUNTIME_DIR wiped while containers run on a user network (logind does it at logout when
the user has no linger): the next container finds the running holder again through its copy
under data-root, reaches the running ones, and nothing leaks afterwards (issue 11 item 13)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from enginehelp import remove_data_root

NET = "wipenet"


@pytest.fixture(autouse=True)
def _clean(rl):
    yield
    rl("rm", "-f", "wsrv")
    rl("network", "rm", NET)
    remove_data_root(rl.data_root)


def _holder_record(rl) -> dict:
    with open(os.path.join(rl.env["XDG_RUNTIME_DIR"], "rootless", "usernet", "holder.json")) as f:
        return json.load(f)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_wiped_runtime_dir_does_not_split_the_network(rl, bb):
    rl.ok("network", "create", NET)
    rl.ok("run", "-d", "--network", NET, "--name", "wsrv", bb, "sh", "-c",
          "echo hello-again > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    deadline = time.monotonic() + 30
    while not json.loads(rl.ok("network", "inspect", NET).stdout)[0]["Containers"]:
        assert time.monotonic() < deadline, "wsrv never joined the network"
        time.sleep(0.2)
    old = _holder_record(rl)
    holder, slirp = old["pid"], old["slirp"]["pid"]

    # logout without linger: the whole runtime dir goes (logind makes it again, empty, at login)
    run = rl.env["XDG_RUNTIME_DIR"]
    for name in os.listdir(run):
        shutil.rmtree(os.path.join(run, name), ignore_errors=True)

    # (busybox's wget -T crashes once connected: the shell's timeout instead)
    r = rl("run", "--rm", "--network", NET, bb, "sh", "-c", "timeout 10 wget -qO- http://wsrv:8080/index.html")
    assert r.returncode == 0 and r.stdout == "hello-again\n", f"the new container cannot reach the running one:\n{r}"
    assert _holder_record(rl)["pid"] == holder, "a second rootless network namespace was started"

    rl.ok("rm", "-f", "wsrv")
    assert _gone(holder), "the rootless network namespace outlived its last container (leaked)"
    assert _gone(slirp), "its slirp4netns outlived it (leaked)"
    assert not os.path.exists(os.path.join(rl.data_root, "networks", "holder.json"))
