"""The registry client at its HTTP seam: small loopback servers that redirect, fail and challenge."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rootless import config as config_mod
from rootless.errors import RegistryError
from rootless.image.registry import RegistryClient, parse_challenge

BLOB = b"blob content " * 100
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class Server:
    def __init__(self, handler):
        self.log = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.log.append((self.path, dict(self.headers)))
                handler(self, outer)

            do_HEAD = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(h, code, body=b"", headers=None):
    h.send_response(code)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def cfg(tmp_path):
    c = config_mod.finish({}, None, {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)})
    return dataclasses.replace(c, data_root=str(tmp_path / "data"), max_download_attempts=3)


def test_redirect_drops_authorization_on_other_host(cfg):
    storage = Server(lambda h, s: _send(h, 200, BLOB))

    def registry(h, s):
        if "Authorization" not in h.headers:
            return _send(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="test"'})
        if h.path.startswith("/v2/repo/blobs/"):
            return _send(h, 307, b"", {"Location": f"http://{storage.host}/storage/blob?sig=1"})
        return _send(h, 200, b"{}")

    reg = Server(registry)
    try:
        client = RegistryClient(cfg, reg.host, "repo", credentials=lambda host: ("u", "p"))
        client.current = client.endpoints[-1]
        client.retry_base = 0.01
        r = client.blob_stream(DIGEST)
        assert b"".join(client.iter_raw(r)) == BLOB
        assert any("Authorization" in hd for p, hd in reg.log)
        assert storage.log and all("Authorization" not in hd for p, hd in storage.log)
    finally:
        reg.close()
        storage.close()


def test_retries_5xx_but_not_4xx(cfg):
    state = {"n": 0}

    def registry(h, s):
        if "manifests/flaky" in h.path:
            state["n"] += 1
            if state["n"] < 3:
                return _send(h, 503, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')
            return _send(h, 200, b'{"schemaVersion":2}', {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        return _send(h, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')

    reg = Server(registry)
    try:
        client = RegistryClient(cfg, reg.host, "repo", credentials=lambda host: None)
        client.retry_base = 0.01
        data, ctype, digest = client.get_manifest("flaky")
        assert state["n"] == 3 and data == b'{"schemaVersion":2}'
        n = len(reg.log)
        with pytest.raises(RegistryError) as e:
            client.get_manifest("missing")
        assert len(reg.log) == n + 1
        assert "manifest unknown" in e.value.message and e.value.hint
    finally:
        reg.close()


def test_unauthorized_without_credentials(cfg):
    reg = Server(lambda h, s: _send(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="x"'}))
    try:
        client = RegistryClient(cfg, reg.host, "repo", credentials=lambda host: None)
        with pytest.raises(RegistryError) as e:
            client.get_manifest("latest")
        assert "unauthorized" in e.value.message and f"rootless login {reg.host}" in e.value.hint
    finally:
        reg.close()


def test_parse_challenge():
    scheme, p = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                'scope="repository:library/busybox:pull"')
    assert scheme == "bearer"
    assert p == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                 "scope": "repository:library/busybox:pull"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
    assert parse_challenge("") == ("", {})
