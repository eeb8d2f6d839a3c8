"""The root helper's request validation and the `rootless helper` command without root."""

from __future__ import annotations

import os

import pytest

from rootless.network import helper
from rootless.network.helper import Refused, validate_request
from rootless.network.ports import PortSpec

pytestmark = pytest.mark.nosubuid


def test_valid_requests():
    assert validate_request({"op": "ping"}) == {"op": "ping"}
    r = validate_request({"op": "connect", "pid": 1234, "ports": [{"container_port": 80, "host_port": 8080}]})
    assert r["ports"] == [PortSpec(80, 8080)]
    assert validate_request({"op": "disconnect", "pid": 99}) == {"op": "disconnect", "pid": 99}


@pytest.mark.parametrize("req,words", [
    ([], "JSON object"), ({"op": "rm -rf"}, "unknown op"), ({"op": "ping", "x": 1}, "unknown field"),
    ({"op": "connect", "pid": "1"}, "pid must be"), ({"op": "connect", "pid": 1}, "pid must be"),
    ({"op": "connect", "pid": True}, "pid must be"), ({"op": "connect", "pid": 5, "ports": "80"}, "list"),
    ({"op": "connect", "pid": 5, "ports": [{"container_port": 80, "evil": 1}]}, "each port"),
    ({"op": "connect", "pid": 5, "ports": [{"container_port": "80"}]}, "integer"),
    ({"op": "connect", "pid": 5, "ports": [{"container_port": 80, "host_ip": "127.0.0.1"}]}, "non-loopback"),
    ({"op": "connect", "pid": 5, "ports": [{"container_port": 80, "host_ip": "::"}]}, "IPv4"),
    ({"op": "connect", "pid": 5, "ports": [{"container_port": 80, "proto": "icmp"}]}, "tcp or udp"),
    ({"op": "connect", "pid": 5, "ports": [{"container_port": 80, "host_port": 9}, {"container_port": 81, "host_port": 9}]},
     "twice"),
])
def test_invalid_requests_are_refused(req, words):
    with pytest.raises(Refused) as e:
        validate_request(req)
    assert words in e.value.message


def test_choose_bip():
    assert helper.choose_bip("172.17.0.1/16", explicit=False) == "172.31.0.1/16"
    assert helper.choose_bip("172.17.0.1/16", explicit=True) == "172.17.0.1/16"
    assert helper.choose_bip("10.9.0.1/24", explicit=True) == "10.9.0.1/24"


def test_bad_bip_is_an_error():
    with pytest.raises(Exception) as e:
        helper.Helper("/nonexistent/x.sock", "172.31.0.0/16")
    assert "usable gateway" in e.value.message


@pytest.mark.skipif(os.getuid() == 0, reason="the refusal is for non-root users")
def test_helper_command_needs_root(rl):
    r = rl("helper", "--socket", "/nonexistent/helper.sock")
    assert r.returncode == 125, r
    assert "error: run the network helper: it must run as root" in r.stderr and "hint:" in r.stderr


def test_unsafe_code_names_what_a_user_could_change(tmp_path):
    if os.getuid() == 0:
        pytest.skip("as root the files are root's")
    f = tmp_path / "rootless.pyz"
    f.write_text("x")
    assert f"belongs to uid {os.getuid()}" in helper.unsafe_code(str(f))
    assert "belongs to uid" in helper.unsafe_code(str(tmp_path), tree=True)
    assert helper.unsafe_code("/usr/bin/env") is None  # root's, in root's folders
    assert helper.unsafe_code("/tmp") == "`/tmp` is writable by others"  # code right in /tmp: anyone adds modules


def test_a_thread_id_is_not_a_process():
    import threading

    ev = threading.Event()
    t = threading.Thread(target=ev.wait)
    t.start()
    try:
        helper.check_tgid(os.getpid())
        with pytest.raises(Refused) as e:
            helper.check_tgid(t.native_id)
        assert f"it is a thread of process {os.getpid()}" in e.value.message
    finally:
        ev.set()
        t.join()
