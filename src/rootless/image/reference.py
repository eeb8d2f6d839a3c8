"""Image references, parsed and normalised exactly as docker does (distribution/reference).

``busybox`` -> ``docker.io/library/busybox:latest``; ``user/app:tag``; ``host:port/path@sha256:...``;
a tag and a digest together (the digest wins when pulling, as in docker). The grammar and the error
texts are those of github.com/distribution/reference (normalize.go, reference.go, regexp.go).
"""

from __future__ import annotations

import re
from typing import Optional

from rootless.errors import UsageError
from rootless.value import Value

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# --- the grammar (regexp.go) -------------------------------------------------------------------
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")"
_DOMAIN = _HOST + r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _REMOTE_NAME
REFERENCE_RE = re.compile(r"^(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$", re.ASCII)
ANCHORED_NAME_RE = re.compile(r"^(?:(" + _DOMAIN + r")/)?(" + _REMOTE_NAME + r")$", re.ASCII)
TAG_RE = re.compile(r"^" + _TAG + r"$", re.ASCII)
IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
SHORT_ID_RE = re.compile(r"^[a-f0-9]{1,64}$")
DIGEST_RE = re.compile(r"^" + _DIGEST + r"$", re.ASCII)

_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


class ReferenceError(UsageError):
    """An image reference docker would refuse too (exit 125, like docker)."""


def _fail(msg: str, ref: str) -> ReferenceError:
    return ReferenceError(
        msg,
        f"`{ref}` is not an image reference; write NAME[:TAG][@DIGEST], lowercase, "
        "e.g. `busybox`, `user/app:1.0`, `host:5000/path/app@sha256:...`",
    )


class Reference(Value):
    """A normalised reference: ``domain``/``path`` with an optional tag and digest."""

    __slots__ = ("domain", "path", "tag", "digest")
    domain: str
    path: str
    tag: Optional[str]
    digest: Optional[str]

    def __init__(
        self,
        domain: str,
        path: str,
        tag: Optional[str] = None,
        digest: Optional[str] = None,
    ) -> None:
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: the fully qualified repository name."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """``busybox``, ``user/app``, ``host:5000/app``: the name as docker shows it."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_REPO_PREFIX) and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_REPO_PREFIX):]
            return self.path
        return self.name

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        s = self.familiar_name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def with_default_tag(self) -> Reference:
        """docker's TagNameOnly: add ``latest`` when there is neither a tag nor a digest."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)

    @property
    def tagged(self) -> str:
        """``name:tag`` (only meaningful when a tag is set)."""
        return f"{self.name}:{self.tag}"

    @property
    def digested(self) -> str:
        return f"{self.name}@{self.digest}"

    @property
    def index_name(self) -> str:
        """The registry host requests go to (docker.io's API lives at registry-1.docker.io)."""
        return self.domain

    @property
    def is_docker_hub(self) -> bool:
        return self.domain == DEFAULT_DOMAIN


def _split_docker_domain(name: str):
    i = name.find("/")
    if i == -1 or (
        not any(c in name[:i] for c in ".:") and name[:i] != "localhost" and name[:i].lower() == name[:i]
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def validate_digest(digest: str, ref: str) -> None:
    if not DIGEST_RE.match(digest):
        raise _fail("invalid reference format", ref)
    algo, hexd = digest.split(":", 1)
    want = _DIGEST_HEX_LEN.get(algo)
    if want is None:
        raise _fail(f"invalid reference format: unsupported digest algorithm `{algo}`", ref)
    if len(hexd) != want or hexd.lower() != hexd:
        raise _fail("invalid reference format: invalid checksum digest length" if len(hexd) != want
                    else "invalid reference format: invalid checksum digest format", ref)


def parse(s: str) -> Reference:
    """docker's ParseNormalizedNamed: a name as a user types it -> a full Reference.

    Raises ReferenceError with docker's wording (``invalid reference format``...).
    """
    if IDENTIFIER_RE.match(s):
        raise ReferenceError(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings",
            "to use an image by its id, give the id to a command that takes one (e.g. `rootless run ID`)",
        )
    domain, remainder = _split_docker_domain(s)
    # the tag and digest are not part of the remote name (normalize.go)
    cut = [x for x in (remainder.find(":"), remainder.find("@")) if x > -1]
    remote_name = remainder[: min(cut)] if cut else remainder
    if remote_name.lower() != remote_name:
        # docker >= 25 (distribution/reference 0.6) names the repository in this message
        raise _fail(f"invalid reference format: repository name ({remote_name}) must be lowercase", s)
    return parse_full(f"{domain}/{remainder}", original=s)


def parse_full(s: str, original: Optional[str] = None) -> Reference:
    """docker's Parse on an already-qualified string (no normalisation of the domain)."""
    orig = original if original is not None else s
    if s == "":
        raise _fail("repository name must have at least one component", orig)
    m = REFERENCE_RE.match(s)
    if not m:
        lm = REFERENCE_RE.match(s.lower())
        if lm:
            name = s[: len(lm.group(1))].split("/", 1)[-1] if "/" in s else s[: len(lm.group(1))]
            raise _fail(f"invalid reference format: repository name ({name}) must be lowercase", orig)
        raise _fail("invalid reference format", orig)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise _fail(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters", orig)
    nm = ANCHORED_NAME_RE.match(name)
    assert nm is not None
    domain, path = nm.group(1) or "", nm.group(2)
    if not domain:
        domain, path = _split_docker_domain(path)
    if digest:
        validate_digest(digest, orig)
    return Reference(domain, path, tag, digest)


def parse_pull(s: str) -> Reference:
    """A reference for pull/push: normalised, ``latest`` added when no tag or digest."""
    return parse(s).with_default_tag()


def is_valid_tag(tag: str) -> bool:
    return bool(TAG_RE.match(tag))


def familiar_string(full: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest`` (what docker prints)."""
    try:
        return parse_full(full).familiar()
    except ReferenceError:
        return full
