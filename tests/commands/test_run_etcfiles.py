"""`run --network none|host --add-host`: the container's /etc/hosts as docker writes it (issue 12).

The fast path for none/host used to have its own generator: it refused ``db=10.0.0.5``, wrote
``[::1]`` with its brackets (glibc then ignores the line) and wrote ``host-gateway`` literally.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.nosubuid, pytest.mark.usefixtures("clean_data_root")]


def test_network_none_add_host_forms(rl, bb):
    r = rl.ok("run", "--rm", "--network", "none", "--add-host", "db=10.0.0.5", "--add-host", "v6:[::1]",
              bb, "cat", "/etc/hosts")
    lines = r.stdout.splitlines()
    assert "10.0.0.5\tdb" in lines
    assert "::1\tv6" in lines and "[" not in r.stdout


def test_network_none_host_gateway_is_refused(rl, bb):
    r = rl("run", "--rm", "--network", "none", "--add-host", "gw:host-gateway", bb, "cat", "/etc/hosts")
    assert r.returncode == 125, r.stdout + r.stderr
    assert "error: " in r.stderr and "host-gateway" in r.stderr and "Traceback" not in r.stderr
    assert "host-gateway\tgw" not in r.stdout


def test_network_host_host_gateway_is_the_host(rl, bb):
    r = rl.ok("run", "--rm", "--network", "host", "--add-host", "gw:host-gateway", bb, "cat", "/etc/hosts")
    assert "127.0.0.1\tgw" in r.stdout.splitlines()
    assert "host-gateway" not in r.stdout
