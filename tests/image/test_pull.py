"""`rootless pull` against the real test registries, as the unprivileged user.

Plain HTTP (insecure-registries), basic auth over TLS with the test CA in certs.d, bearer tokens
from the test token issuer, a docker.io mirror; Docker schema2, OCI, lists and indexes; tampered
blobs, concurrent pulls, a pull killed with SIGKILL; error messages without tracebacks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest


@pytest.fixture(autouse=True)
def _remove_layers(rl):
    """Unpacked layers belong to subordinate ids, which pytest cannot delete: prune them."""
    yield
    if os.path.isdir(rl.data_root):
        rl("system", "prune", "-a", "-f")


def insecure(rl, *regs, extra: str = "") -> None:
    rl.write_config("insecure-registries = [" + ", ".join(f'"{r.host}"' for r in regs) + "]\n" + extra)


def store_files(rl):
    root = os.path.join(rl.data_root, "image")
    blobs = sorted(os.listdir(os.path.join(root, "blobs", "sha256")))
    tmp = sorted(os.listdir(os.path.join(root, "tmp")))
    return blobs, tmp


def assert_clean_error(r, *words):
    assert r.returncode == 125, str(r)
    assert "Traceback" not in r.stderr, str(r)
    assert r.stderr.startswith("error: "), str(r)
    assert "\nhint: " in r.stderr, str(r)
    for w in words:
        assert w in r.stderr, str(r)


def test_pull_schema2_then_up_to_date(rl, busybox_image):
    reg = busybox_image.registry
    insecure(rl, reg)
    r = rl.ok("pull", busybox_image.ref)
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "latest: Pulling from busybox"
    assert lines[-1] == busybox_image.ref
    assert f"Digest: {busybox_image.digest}" in r.stdout
    assert f"{busybox_image.layer_digest[7:19]}: Pull complete" in r.stdout
    assert "Status: Downloaded newer image for" in r.stdout
    out = rl.ok("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}").stdout
    assert f"{reg.host}/busybox latest {busybox_image.config_digest[7:19]}" in out
    again = rl.ok("pull", busybox_image.ref)
    assert "Status: Image is up to date for" in again.stdout
    blobs, tmp = store_files(rl)
    assert busybox_image.layer_digest[7:] in blobs and tmp == []


def test_pull_oci_quiet_and_by_digest(rl, busybox_image):
    insecure(rl, busybox_image.registry)
    r = rl.ok("pull", "-q", busybox_image.oci_ref)
    assert r.stdout == busybox_image.oci_ref + "\n"
    name = busybox_image.ref.rsplit(":", 1)[0]
    r = rl.ok("pull", f"{name}@{busybox_image.digest}")
    assert r.stdout.strip().splitlines()[-1] == f"{name}@{busybox_image.digest}"
    ins = json.loads(rl.ok("image", "inspect", busybox_image.config_digest[7:19]).stdout)[0]
    assert ins["Id"] == busybox_image.config_digest
    assert f"{name}@{busybox_image.digest}" in ins["RepoDigests"]
    assert f"{name}@{busybox_image.oci_digest}" in ins["RepoDigests"]
    assert ins["RootFS"] == {"Type": "layers", "Layers": [busybox_image.diff_id]}


def test_pull_default_tag_message(rl, busybox_image):
    insecure(rl, busybox_image.registry)
    name = busybox_image.ref.rsplit(":", 1)[0]
    r = rl.ok("pull", name)
    assert r.stdout.startswith("Using default tag: latest\n")
    assert r.stdout.strip().endswith(name + ":latest")


def test_pull_multiarch_host_and_platform(rl, multiarch_image):
    insecure(rl, multiarch_image.registry)
    r = rl.ok("pull", multiarch_image.ref)
    assert f"Digest: {multiarch_image.digest}" in r.stdout
    ins = json.loads(rl.ok("image", "inspect", multiarch_image.ref).stdout)[0]
    assert ins["Architecture"] == "amd64" and ins["Os"] == "linux"
    r = rl.ok("pull", "--platform", "linux/arm64", multiarch_image.docker_ref)
    ins = json.loads(rl.ok("image", "inspect", multiarch_image.docker_ref).stdout)[0]
    assert ins["Architecture"] == "arm64"
    r = rl.ok("pull", "--platform", "linux/arm/v7", multiarch_image.ref)
    ins = json.loads(rl.ok("image", "inspect", multiarch_image.ref).stdout)[0]
    assert (ins["Architecture"], ins.get("Variant")) == ("arm", "v7")
    r = rl("pull", "--platform", "linux/s390x", multiarch_image.ref)
    assert_clean_error(r, "no matching manifest for linux/s390x", "linux/amd64", "linux/arm64", "linux/arm/v7")


def test_pull_platform_mismatch_single_manifest(rl, busybox_image):
    insecure(rl, busybox_image.registry)
    r = rl("pull", "--platform", "linux/arm64", busybox_image.ref)
    assert_clean_error(r, "does not match the specified platform", "wanted linux/arm64")


def test_pull_layered_gzip_none_zstd(rl, layered_image):
    insecure(rl, layered_image.registry)
    rl.ok("pull", layered_image.ref)
    ins = json.loads(rl.ok("image", "inspect", layered_image.ref).stdout)[0]
    assert ins["RootFS"]["Layers"] == list(layered_image.diff_ids)
    assert ins["Size"] > 0


def test_pull_basic_auth_tls(rl, auth_busybox):
    reg = auth_busybox.registry
    certs = os.path.join(rl.env["XDG_CONFIG_HOME"], "rootless", "certs.d", reg.host)
    os.makedirs(certs)
    shutil.copyfile(reg.ca_path, os.path.join(certs, "ca.crt"))
    r = rl("pull", auth_busybox.ref)
    assert_clean_error(r, "unauthorized", f"rootless login {reg.host}")
    r = rl("login", "-u", reg.username, "--password-stdin", reg.host, input=b"wrong\n")
    assert_clean_error(r, "unauthorized")
    r = rl.ok("login", "-u", reg.username, "--password-stdin", reg.host, input=reg.password.encode() + b"\n")
    assert "Login Succeeded" in r.stdout
    cfg = os.path.join(rl.home, ".docker", "config.json")
    assert oct(os.stat(cfg).st_mode & 0o777) == "0o600"
    assert reg.host in json.load(open(cfg))["auths"]
    rl.ok("pull", auth_busybox.ref)
    rl.ok("pull", auth_busybox.oci_ref)
    r = rl.ok("logout", reg.host)
    assert f"Removing login credentials for {reg.host}" in r.stdout
    assert reg.host not in json.load(open(cfg))["auths"]


def test_docker_config_env(rl, auth_busybox, tmp_path):
    """Credentials written by docker (DOCKER_CONFIG, base64 `auth`) are used as they are."""
    import base64

    reg = auth_busybox.registry
    certs = os.path.join(rl.env["XDG_CONFIG_HOME"], "rootless", "certs.d", reg.host)
    os.makedirs(certs)
    shutil.copyfile(reg.ca_path, os.path.join(certs, "ca.crt"))
    d = tmp_path / "dockercfg"
    d.mkdir()
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    (d / "config.json").write_text(json.dumps({"auths": {f"https://{reg.host}": {"auth": auth}}}))
    rl.ok("pull", "-q", auth_busybox.ref, env={"DOCKER_CONFIG": str(d)})


def test_pull_token_auth(rl, token_busybox):
    reg = token_busybox.registry
    ts = reg.token_server
    certs = os.path.join(rl.env["XDG_CONFIG_HOME"], "rootless", "certs.d", reg.host)
    os.makedirs(certs)
    shutil.copyfile(reg.ca_path, os.path.join(certs, "ca.crt"))
    n = len(ts.requests)
    rl.ok("pull", token_busybox.ref)  # anonymous token, pull scope
    reqs = ts.requests[n:]
    assert reqs and reqs[0]["anonymous"] and any("repository:busybox:pull" in str(s) for s in reqs[0]["scopes"])
    ts.allow_anonymous_pull = False
    try:
        r = rl("pull", token_busybox.oci_ref)
        assert_clean_error(r, "unauthorized", "rootless login")
        rl.ok("login", "-u", reg.username, "--password-stdin", reg.host, input=reg.password.encode())
        n = len(ts.requests)
        rl.ok("pull", token_busybox.oci_ref)
        assert any(not q["anonymous"] for q in ts.requests[n:])
    finally:
        ts.allow_anonymous_pull = True


def test_pull_via_mirror(rl, mirror_registry):
    rl.write_config(f'registry-mirrors = ["http://{mirror_registry.host}"]\n')
    r = rl.ok("pull", "busybox")
    assert r.stdout.strip().splitlines()[-1] == "docker.io/library/busybox:latest"
    assert f"Digest: {mirror_registry.busybox.digest}" in r.stdout
    out = rl.ok("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert out == "busybox:latest\n"


def test_tampered_blob(rl, scratch_registry, push_layer_image):
    from fixtures.oci import F

    pushed = push_layer_image("tampered", [[F("hello.txt", "hello\n" * 1000)]], registry=scratch_registry)
    scratch_registry.tamper_blob(pushed.layer_digests[0])
    insecure(rl, scratch_registry)
    r = rl("pull", pushed.ref)
    assert_clean_error(r, pushed.layer_digests[0], scratch_registry.host, "verification")
    blobs, tmp = store_files(rl)
    assert pushed.layer_digests[0][7:] not in blobs
    assert tmp == []
    assert rl.ok("images", "-q").stdout == ""


def test_concurrent_pulls_one_copy(rl, busybox_image, layered_image):
    insecure(rl, busybox_image.registry)
    procs = [subprocess.Popen(rl.argv("pull", ref), env=rl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for ref in (busybox_image.ref, busybox_image.oci_ref, layered_image.ref, layered_image.ref)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    blobs, tmp = store_files(rl)
    assert tmp == []
    assert busybox_image.layer_digest[7:] in blobs
    ids = rl.ok("images", "-q", "--no-trunc").stdout.split()
    assert sorted(set(ids)) == sorted({busybox_image.config_digest, layered_image.config_digest})
    rl.ok("pull", "-q", layered_image.ref)


def test_pull_killed_then_restarted(rl, scratch_registry, push_layer_image):
    big = os.urandom(48 << 20)
    from fixtures.oci import F

    pushed = push_layer_image("big", [[F("big.bin", big)]], compression="none", raw=True, registry=scratch_registry)
    insecure(rl, scratch_registry)
    tmpdir = os.path.join(rl.data_root, "image", "tmp")
    killed = False
    for _ in range(5):
        p = subprocess.Popen(rl.argv("pull", pushed.ref), env=rl.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None:
            try:
                parts = [n for n in os.listdir(tmpdir) if n.endswith(".partial")]
            except OSError:
                parts = []
            if parts and os.path.getsize(os.path.join(tmpdir, parts[0])) > 0:
                p.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
        p.wait()
        if killed:
            break
        rl("rmi", "-f", pushed.ref)
    assert killed, "the pull finished before it could be killed"
    assert rl.ok("images", "-q").stdout == ""  # nothing half-written is visible
    rl.ok("pull", pushed.ref)
    blobs, tmp = store_files(rl)
    assert tmp == [] and pushed.layer_digests[0][7:] in blobs
    assert rl.ok("images", "-q", "--no-trunc").stdout.strip() == pushed.config_digest


def test_errors_have_hints(rl, registry, busybox_image):
    insecure(rl, registry)
    r = rl("pull", registry.ref("nosuch/image:latest"))
    assert_clean_error(r, "nosuch/image", "manifest unknown")
    r = rl("pull", busybox_image.ref.rsplit(":", 1)[0] + ":nosuchtag")
    assert_clean_error(r, "nosuchtag")
    r = rl("pull", "nosuchhost.invalid/foo/bar")
    assert_clean_error(r, "nosuchhost.invalid", "no such host")
    r = rl("pull", "Busybox")
    assert_clean_error(r, "invalid reference format: repository name (library/Busybox) must be lowercase")
    r = rl("pull", "a:b:c")
    assert_clean_error(r, "invalid reference format")
    from fixtures.registry import free_port

    r = rl("pull", f"127.0.0.1:{free_port()}/x")
    assert_clean_error(r, "connection refused")


def _config(tmp_path, **kw):
    import dataclasses

    from rootless import config

    cfg = config.finish({}, None, {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)})
    return dataclasses.replace(cfg, data_root=str(tmp_path / "data"), **kw)


def test_tls_verification_and_insecure_list(tmp_path, monkeypatch, auth_busybox, busybox_image):
    """Loopback is insecure by default (as in docker); without that, TLS is verified against the
    certs.d CA and a plain-HTTP registry is refused with a hint."""
    from rootless.errors import RegistryError
    from rootless.image import auth, pull

    reg = auth_busybox.registry
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    cfg = _config(tmp_path, insecure_registries=[])
    with pytest.raises(RegistryError) as e:
        pull.pull(cfg, busybox_image.ref, quiet=True, unpack=False)
    assert "HTTP response to HTTPS client" in e.value.message and "insecure-registries" in e.value.hint
    with pytest.raises(RegistryError) as e:
        pull.pull(cfg, auth_busybox.ref, quiet=True, unpack=False)
    assert "certificate" in e.value.message and "certs.d" in e.value.hint
    certs = tmp_path / "cfg" / "rootless" / "certs.d" / reg.host
    certs.mkdir(parents=True)
    shutil.copyfile(reg.ca_path, certs / "ca.crt")
    auth.store_credentials(reg.host, reg.username, reg.password)
    img = pull.pull(cfg, auth_busybox.ref, quiet=True, unpack=False)
    assert img.id == auth_busybox.config_digest
    cfg2 = _config(tmp_path, insecure_registries=["10.0.0.0/8", "127.0.0.0/8"])
    img = pull.pull(cfg2, busybox_image.ref, quiet=True, unpack=False)
    assert img.id == busybox_image.config_digest


def test_is_insecure_cidr():
    from rootless.image.registry import is_insecure

    assert is_insecure("127.0.0.1:5000", ["127.0.0.0/8"])
    assert is_insecure("myreg:5000", ["myreg:5000"])
    assert not is_insecure("myreg:5000", ["myreg:5001"])
    assert not is_insecure("10.1.2.3:5000", ["127.0.0.0/8"])
    assert is_insecure("[::1]:5000", ["::1/128"])


@pytest.fixture
def url_registry(tmp_path):
    """A fresh registry that accepts manifests whose layers carry loopback `urls`."""
    from fixtures.registry import Registry

    class URLRegistry(Registry):
        def _config(self):
            c = super()._config()
            c["validation"] = {"manifests": {"urls": {"allow": ["^http://127\\.0\\.0\\.1"]}}}
            return c

    reg = URLRegistry(str(tmp_path / "url-registry"))
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


def test_foreign_layer_from_its_url(rl, url_registry):
    """A foreign (non-distributable) layer is fetched from its URL, as docker does; the registry
    never had it. Its content is still verified against the digest."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fixtures import oci

    registry = url_registry

    tar = oci.build_tar([oci.D("etc"), oci.F("etc/foreign", "from elsewhere\n")])
    gz = oci.gzip_bytes(tar)
    hits = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append((self.path, self.headers.get("Authorization")))
            body = gz if self.path == "/good.tar.gz" else b"bad" * 10
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        cfg = oci.canonical_json({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                                  "rootfs": {"type": "layers", "diff_ids": [oci.sha256_digest(tar)]}})
        cdig = oci.push_blob_raw(registry.url, "foreign", cfg)
        for tag, path in (("latest", "/good.tar.gz"), ("bad", "/bad")):
            man = oci.canonical_json({
                "schemaVersion": 2, "mediaType": oci.MT_DOCKER_MANIFEST,
                "config": {"mediaType": oci.MT_DOCKER_CONFIG, "digest": cdig, "size": len(cfg)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                            "digest": oci.sha256_digest(gz), "size": len(gz), "urls": [base + path]}]})
            oci.put_manifest_raw(registry.url, "foreign", tag, man, oci.MT_DOCKER_MANIFEST)
        insecure(rl, registry)
        rl.ok("pull", registry.ref("foreign:latest"))
        assert hits and hits[0] == ("/good.tar.gz", None)
        rl.ok("rmi", registry.ref("foreign:latest"))
        r = rl("pull", registry.ref("foreign:bad"))
        assert_clean_error(r, oci.sha256_digest(gz))
        assert store_files(rl)[1] == []
    finally:
        srv.shutdown()
        srv.server_close()
