"""Reference parsing and normalisation: docker's (distribution/reference) cases and errors."""

from __future__ import annotations

import pytest

from rootless.image import reference
from rootless.image.reference import ReferenceError

H = "a" * 64


@pytest.mark.parametrize("text, full, familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/user/app:tag", "docker.io/user/app:tag", "user/app:tag"),
    ("user/app:tag", "docker.io/user/app:tag", "user/app:tag"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b/c:v1.0-rc_1", "localhost:5000/a/b/c:v1.0-rc_1", "localhost:5000/a/b/c:v1.0-rc_1"),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ("Example.COM/app", "Example.COM/app:latest", "Example.COM/app:latest"),
    ("a__b/c.d-e", "docker.io/a__b/c.d-e:latest", "a__b/c.d-e:latest"),
    (f"busybox@sha256:{H}", f"docker.io/library/busybox@sha256:{H}", f"busybox@sha256:{H}"),
    (f"host:5000/x:t@sha256:{H}", f"host:5000/x:t@sha256:{H}", f"host:5000/x:t@sha256:{H}"),
])
def test_normalise(text, full, familiar):
    r = reference.parse(text).with_default_tag()
    assert str(r) == full
    assert r.familiar() == familiar
    assert reference.familiar_string(full) == familiar


@pytest.mark.parametrize("text, message", [
    ("", "invalid reference format"),
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App:tag", "invalid reference format: repository name (user/App) must be lowercase"),
    ("a:b:c", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    (f"busybox@sha512:{H}", "invalid checksum digest length"),
    (f"busybox@md5:{H}", "unsupported digest algorithm"),
    (H, "cannot specify 64-byte hexadecimal strings"),
    ("x" * 256, "repository name must not be more than 255 characters"),
    ("busybox:" + "t" * 129, "invalid reference format"),
])
def test_invalid(text, message):
    with pytest.raises(ReferenceError) as e:
        reference.parse(text)
    assert message in e.value.message
    assert e.value.hint and e.value.exit_code == 125


def test_tag_and_digest_parts():
    r = reference.parse(f"127.0.0.1:5000/ns/app:v1@sha256:{H}")
    assert (r.domain, r.path, r.tag, r.digest) == ("127.0.0.1:5000", "ns/app", "v1", f"sha256:{H}")
    assert r.digested == f"127.0.0.1:5000/ns/app@sha256:{H}"
    assert reference.parse("busybox").with_tag("x").tagged == "docker.io/library/busybox:x"
    assert reference.is_valid_tag("v1.0_rc-2") and not reference.is_valid_tag(".v1")
