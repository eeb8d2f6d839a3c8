"""Containers on user-defined networks: reach each other by name, as an unprivileged user.

Only addresses inside the namespaces rootless creates (the shared rootless network namespace and
the containers') and loopback are used; the host's interfaces are never touched.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from enginehelp import remove_data_root, setup_busybox

pytestmark = pytest.mark.nosubuid


@pytest.fixture(autouse=True)
def _clean_data_root(rl):
    yield
    for n in ("mynet", "other"):
        rl("network", "rm", "-f", n)
    remove_data_root(rl.data_root)


@pytest.fixture
def bb(rl, busybox_image):
    return setup_busybox(rl, busybox_image)


def holder_file(rl) -> str:
    return os.path.join(rl.env["XDG_RUNTIME_DIR"], "rootless", "usernet", "holder.json")


def holder_alive(rl) -> bool:
    try:
        with open(holder_file(rl)) as f:
            pid = json.load(f)["pid"]
    except (OSError, ValueError):
        return False
    return os.path.exists(f"/proc/{pid}")


def start_server(rl, bb, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        rl.argv("run", "--rm", "--init", "--network", "mynet", "--name", "srv", *extra, bb, "sh", "-c",
                "echo hello-net > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"),
        env=rl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_attached(rl, net: str, name: str, p: subprocess.Popen, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = json.loads(rl.ok("network", "inspect", net).stdout)[0]
        for c in info["Containers"].values():
            if c["Name"] == name:
                return c["IPv4Address"].split("/")[0]
        if p.poll() is not None:
            raise AssertionError(f"the server exited: {p.communicate()}")
        time.sleep(0.2)
    raise AssertionError(f"{name} never joined {net}")


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()


def test_two_containers_reach_each_other_by_name(rl, bb):
    rl.ok("network", "create", "mynet")
    rl.ok("network", "create", "other")
    srv = start_server(rl, bb)
    try:
        ip = wait_attached(rl, "mynet", "srv", srv)
        assert ip.startswith("10.89.0.")
        assert holder_alive(rl)
        r = rl.ok("run", "--rm", "--network", "mynet", "--name", "cli", bb, "sh", "-c",
                  "wget -qO- http://srv:8080/index.html; cat /etc/hosts; ip -4 -o addr show eth0; ip route")
        assert r.stdout.startswith("hello-net\n"), r
        assert f"{ip}\tsrv" in r.stdout and "default via 10.89.0.1 dev eth0" in r.stdout
        # another network reaches neither the name nor the address
        r = rl("run", "--rm", "--network", "other", bb, "sh", "-c",
               f"wget -T 2 -qO- http://srv:8080/index.html; echo rc=$?; wget -T 2 -qO- http://{ip}:8080/index.html;"
               " echo rc=$?")
        assert "hello-net" not in r.stdout and r.stdout.count("rc=1") == 2, r
        # rm refuses while a container is attached
        r = rl("network", "rm", "mynet")
        assert r.returncode == 1 and "containers are attached to it: `srv`" in r.stderr and "hint:" in r.stderr
    finally:
        stop(srv)
    info = json.loads(rl.ok("network", "inspect", "mynet").stdout)[0]
    assert info["Containers"] == {}
    assert not holder_alive(rl), "the rootless network namespace outlived its last container"
    assert rl.ok("network", "rm", "mynet", "other").stdout == "mynet\nother\n"


def test_published_port_and_way_out(rl, bb):
    """-p works for a container on a user network; its peers see its /etc/hosts entry go when it leaves."""
    rl.ok("network", "create", "mynet")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = start_server(rl, bb, "-p", f"127.0.0.1:{port}:8080")
    try:
        wait_attached(rl, "mynet", "srv", srv)
        body = None
        deadline = time.monotonic() + 20
        while body is None and time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read()
            except OSError:
                time.sleep(0.2)
        assert body == b"hello-net\n"
        # the way out: through the NAT of the shared namespace to its slirp4netns (one hop more)
        r = rl.ok("run", "--rm", "--network", "mynet", bb, "sh", "-c", "cat /etc/resolv.conf; ping -c1 -W2 10.0.2.3")
        assert "nameserver 10.0.2.3" in r.stdout and "1 packets received" in r.stdout and "ttl=254" in r.stdout
    finally:
        stop(srv)
    assert not holder_alive(rl)


def test_internal_network_has_no_way_out(rl, bb):
    rl.ok("network", "create", "--internal", "mynet")
    r = rl.ok("run", "--rm", "--network", "mynet", bb, "sh", "-c",
              "ip route; ip -4 -o addr show eth0; ping -c1 -W2 10.0.2.3; echo rc=$?")
    assert "default" not in r.stdout and "10.89.0.2/24" in r.stdout and "rc=1" in r.stdout
    assert not holder_alive(rl)


def test_connect_and_disconnect_a_running_container(rl, bb):
    rl.ok("network", "create", "mynet")
    rl.ok("network", "create", "other")
    srv = start_server(rl, bb)
    plain = subprocess.Popen(rl.argv("run", "--rm", "--init", "--name", "plain", bb, "sleep", "60"), env=rl.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_attached(rl, "mynet", "srv", srv)
        deadline = time.monotonic() + 20
        while "plain" not in rl.ok("ps", "--format", "{{.Names}}").stdout and time.monotonic() < deadline:
            time.sleep(0.2)
        r = rl("network", "connect", "other", "plain")  # on slirp4netns: its own user namespace
        assert r.returncode == 125 and "does not live in the user namespace" in r.stderr and "hint:" in r.stderr
        rl.ok("network", "connect", "other", "srv")
        info = json.loads(rl.ok("network", "inspect", "other").stdout)[0]
        ip = [c["IPv4Address"] for c in info["Containers"].values() if c["Name"] == "srv"][0].split("/")[0]
        r = rl.ok("run", "--rm", "--network", "other", bb, "wget", "-qO-", "http://srv:8080/index.html")
        assert r.stdout == "hello-net\n"
        rl.ok("network", "disconnect", "other", "srv")
        r = rl("run", "--rm", "--network", "other", bb, "wget", "-T", "2", "-qO-", f"http://{ip}:8080/index.html")
        assert r.returncode != 0
        r = rl("network", "disconnect", "other", "srv")
        assert r.returncode == 1 and "not connected" in r.stderr
    finally:
        stop(plain)
        stop(srv)
    assert not holder_alive(rl)


def test_detached_server_on_a_user_network(rl, bb):
    rl.ok("network", "create", "mynet")
    rl.ok("run", "-d", "--network", "mynet", "--name", "srv", bb, "sh", "-c",
          "echo hi-detached > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    try:
        r = rl.ok("run", "--rm", "--network", "mynet", bb, "wget", "-qO-", "http://srv:8080/index.html")
        assert r.stdout == "hi-detached\n"
        assert holder_alive(rl)
    finally:
        rl("rm", "-f", "srv")
    assert json.loads(rl.ok("network", "inspect", "mynet").stdout)[0]["Containers"] == {}
    assert not holder_alive(rl)
