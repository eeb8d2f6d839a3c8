"""The registry v2 client: ping, manifests, blobs, uploads; auth, mirrors, TLS, retries, redirects.

Auth escalates as docker's does: a request goes out anonymously; a 401 carries a
``WWW-Authenticate`` challenge; ``Bearer realm=...,service=...,scope=...`` gets a token from the
realm (with the user's basic credentials when ``~/.docker/config.json`` has some, anonymously
otherwise), ``Basic`` sends the credentials. Redirects (to blob storage) are followed by hand so that
the Authorization header never goes to another host.

requests is imported here only: this module is never imported by ``run`` of a local image.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlencode, urljoin, urlsplit

from rootless import paths
from rootless.errors import RegistryError
from rootless.image import manifest as mf

DOCKER_HUB_API = "registry-1.docker.io"
USER_AGENT = "rootless/0.1 (docker-compatible)"
MAX_REDIRECTS = 10
# What a registry may make us hold in memory (blobs are streamed to disk instead). containerd and
# docker cap manifests at 4 MiB too; other replies (errors, tokens, pings) are small.
MAX_MANIFEST = 4 << 20
MAX_SMALL_BODY = 1 << 20


# --- which endpoints, with which TLS ------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """Where requests for one registry go. ``verify``: True, False (insecure) or a CA bundle path."""

    base: str  # "https://127.0.0.1:5000"
    host: str  # "127.0.0.1:5000": the registry's name (for credentials and messages)
    verify: Any = True
    mirror: bool = False
    insecure: bool = False  # may fall back to plain HTTP
    cert: Optional[Tuple[str, str]] = None  # client certificate and key (certs.d client.cert/.key)


def certs_dirs(host: str, env: Optional[Dict[str, str]] = None) -> List[str]:
    """docker's certs.d places: the user's first, then the system's."""
    env = dict(os.environ) if env is None else env
    user = os.path.join(paths.config_home(env), "rootless", "certs.d", host)
    return [user, os.path.join("/etc/docker/certs.d", host), os.path.join("/etc/containers/certs.d", host)]


def _tls_files(host: str) -> Tuple[List[str], Optional[Tuple[str, str]]]:
    cas: List[str] = []
    cert = None
    for d in certs_dirs(host):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            if n.endswith(".crt"):
                cas.append(p)
            elif n.endswith(".cert") and os.path.exists(p[:-5] + ".key"):
                cert = (p, p[:-5] + ".key")
        if cas or cert:
            break
    return cas, cert


def _ca_bundle(cas: List[str]) -> str:
    """The system bundle plus certs.d CAs in one file (requests takes one path), cached by content."""
    import certifi  # vendored with requests

    blobs = []
    for p in [certifi.where()] + cas:
        with open(p, "rb") as f:
            blobs.append(f.read().rstrip(b"\n") + b"\n")
    data = b"".join(blobs)
    key = hashlib.sha256(data).hexdigest()[:16]
    d = os.path.join(paths.cache_home(), "rootless", "ca")
    out = os.path.join(d, f"bundle-{key}.pem")
    if not os.path.exists(out):
        os.makedirs(d, mode=0o700, exist_ok=True)
        paths.atomic_write(out, data, 0o600)
    return out


def is_insecure(host: str, insecure: List[str]) -> bool:
    """``host`` is listed in insecure-registries, by name, or by an address inside a listed CIDR."""
    if host in insecure:
        return True
    nets = []
    for item in insecure:
        if "/" in item:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue
    if not nets:
        return False
    name = host
    m = re.match(r"^\[(.*)\](?::\d+)?$", host)
    if m:
        name = m.group(1)
    elif host.count(":") == 1:
        name = host.split(":")[0]
    addrs: List[str] = []
    try:
        addrs = [str(ipaddress.ip_address(name))]
    except ValueError:
        try:
            addrs = list({ai[4][0] for ai in socket.getaddrinfo(name, None)})
        except OSError:
            addrs = []
    for a in addrs:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            continue
        if any(ip in n for n in nets):
            return True
    return False


def endpoint_for(host: str, config: Any, mirror: bool = False, base: Optional[str] = None) -> Endpoint:
    insecure = is_insecure(host, list(getattr(config, "insecure_registries", []) or []))
    api_host = DOCKER_HUB_API if host == "docker.io" and base is None else host
    cas, cert = _tls_files(host)
    verify: Any = _ca_bundle(cas) if cas else True
    if insecure:
        verify = False
    return Endpoint(base or f"https://{api_host}", host, verify, mirror, insecure, cert)


def endpoints(config: Any, domain: str, push: bool = False) -> List[Endpoint]:
    """For docker.io: each of registry-mirrors (pulls only), then the origin; else the origin."""
    out: List[Endpoint] = []
    if domain == "docker.io" and not push:
        for m in getattr(config, "registry_mirrors", []) or []:
            u = urlsplit(m if "://" in m else f"https://{m}")
            if u.scheme not in ("http", "https") or not u.netloc:
                continue
            ep = endpoint_for(u.netloc, config, mirror=True, base=f"{u.scheme}://{u.netloc}{u.path.rstrip('/')}")
            out.append(ep)
    out.append(endpoint_for(domain, config))
    return out


# --- WWW-Authenticate -----------------------------------------------------------------------------

_CHALLENGE_RE = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> Tuple[str, Dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {...})."""
    header = header.strip()
    if not header:
        return "", {}
    scheme, _, rest = header.partition(" ")
    params = {}
    for m in _CHALLENGE_RE.finditer(rest):
        params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return scheme.lower(), params


# --- the client -----------------------------------------------------------------------------------

_SESSIONS: Dict[Tuple[Any, ...], Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(pool: int):
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter

    # insecure-registries are used without verification on purpose (as docker does): no warning
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    ad = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 4), max_retries=0)
    s.mount("https://", ad)
    s.mount("http://", ad)
    s.trust_env = False  # no proxies from the environment for loopback registries; no .netrc
    return s


class RegistryClient:
    """One repository on one registry (with its mirrors), for ``actions`` ("pull" or "pull,push")."""

    def __init__(self, config: Any, domain: str, repo: str, *, push: bool = False,
                 credentials: Optional[Callable[[str], Optional[Tuple[str, str]]]] = None,
                 what: str = ""):
        self.config = config
        self.domain = domain
        self.repo = repo
        self.push = push
        self.what = what or f"{domain}/{repo}"
        self.verb = "push" if push else "pull"
        self.endpoints = endpoints(config, domain, push)
        self.attempts = max(1, int(getattr(config, "max_download_attempts", 5) or 5))
        self.session = _session(int(getattr(config, "max_concurrent_downloads", 3) or 3) + 2)
        if credentials is None:
            from rootless.image import auth

            credentials = auth.get_credentials
        self._credentials = credentials
        self._auth: Dict[str, str] = {}  # endpoint base -> Authorization header value
        self._scheme_fixed: Dict[str, str] = {}  # insecure endpoint base -> the base that worked
        self._lock = threading.Lock()
        self.current: Endpoint = self.endpoints[-1]
        self.retry_base = float(os.environ.get("ROOTLESS_RETRY_DELAY", "1"))

    # --- low level ---------------------------------------------------------------------------
    def _base(self, ep: Endpoint) -> str:
        return self._scheme_fixed.get(ep.base, ep.base)

    def _scope(self) -> str:
        return f"repository:{self.repo}:{'pull,push' if self.push else 'pull'}"

    def _err(self, ep: Endpoint, text: str, hint: Optional[str] = None) -> RegistryError:
        where = f"registry `{ep.host}`" + (" (mirror)" if ep.mirror else "")
        return RegistryError(f"{self.verb} `{self.what}`: {where}: {text}", hint)

    def _connection_error(self, ep: Endpoint, e: Exception) -> RegistryError:
        import requests

        text = str(e)
        low = text.lower()
        if isinstance(e, requests.exceptions.SSLError):
            if "wrong version number" in low or "record layer failure" in low or "http request" in low:
                return self._err(ep, "http: server gave HTTP response to HTTPS client",
                                 f"if `{ep.host}` serves plain HTTP, add it to insecure-registries in daemon.toml")
            return self._err(ep, "TLS certificate verification failed" if "verify" in low else f"TLS error: {_short(text)}",
                             f"put the registry's CA certificate in ~/.config/rootless/certs.d/{ep.host}/ca.crt "
                             f"(or /etc/docker/certs.d/{ep.host}/ca.crt), or list `{ep.host}` in insecure-registries")
        if "name or service not known" in low or "nodename nor servname" in low or "temporary failure in name resolution" in low \
                or "no address associated" in low or "failed to resolve" in low or "getaddrinfo" in low:
            return self._err(ep, "no such host", "check the registry name in the image reference")
        if "connection refused" in low:
            return self._err(ep, "connection refused", "check that the registry runs and the host and port are right")
        if isinstance(e, requests.exceptions.Timeout):
            return self._err(ep, "timed out", "check the network, or try again later")
        return self._err(ep, f"connection failed: {_short(text)}", "check the network and the registry address")

    def _retryable(self, e: Exception) -> bool:
        import requests

        if isinstance(e, requests.exceptions.SSLError):
            return False
        low = str(e).lower()
        if "connection refused" in low:
            return False  # nothing listens: retrying only delays the error (docker fails at once too)
        if "name or service not known" in low or "temporary failure in name resolution" in low or "failed to resolve" in low:
            return False
        return isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                              requests.exceptions.ChunkedEncodingError))

    def sleep_backoff(self, attempt: int) -> None:
        time.sleep(min(self.retry_base * (2 ** (attempt - 1)), 10.0))

    def _send(self, ep: Endpoint, method: str, url: str, headers: Dict[str, str], *, stream: bool = False,
              data: Any = None, auth_header: Optional[str] = None, timeout: float = 60):
        """One request following redirects by hand; Authorization only to the registry's own host."""
        own = urlsplit(self._base(ep)).netloc
        for _ in range(MAX_REDIRECTS + 1):
            h = dict(headers)
            if auth_header and urlsplit(url).netloc == own:
                h["Authorization"] = auth_header
            # Always streamed: requests would otherwise load a body of any size (and inflate any
            # Content-Encoding) into memory. Non-streamed callers get it read with a cap.
            h.setdefault("Accept-Encoding", "identity")
            r = self.session.request(method, url, headers=h, stream=True, data=data, verify=ep.verify,
                                     cert=ep.cert, allow_redirects=False, timeout=(15, timeout))
            if not stream and method != "HEAD" and r.status_code not in (301, 302, 303, 307, 308):
                try:
                    load_capped(r, MAX_SMALL_BODY, f"the answer to {method} `{urlsplit(url).path}`")
                except RegistryError as e:
                    raise self._err(ep, str(e), e.hint)
            if r.status_code in (301, 302, 303, 307, 308) and "Location" in r.headers:
                url = urljoin(url, r.headers["Location"])
                r.close()
                if r.status_code == 303 or (r.status_code in (301, 302) and method == "POST"):
                    method, data = "GET", None
                continue
            return r
        raise self._err(ep, "too many redirects", "the registry is misconfigured")

    def request(self, ep: Endpoint, method: str, path: str, headers: Optional[Dict[str, str]] = None, *,
                stream: bool = False, data: Any = None, retry: bool = True, full_url: bool = False,
                timeout: float = 60):
        """A request with auth escalation on 401 and back-off retries for connection errors and 5xx."""
        import requests

        headers = dict(headers or {})
        attempts = self.attempts if retry else 1
        last: Optional[Exception] = None
        attempt = 0
        while attempt < attempts:
            attempt += 1
            url = path if full_url else self._base(ep) + path
            try:
                r = self._send(ep, method, url, headers, stream=stream, data=data,
                               auth_header=self._auth.get(ep.base), timeout=timeout)
                if r.status_code == 401:
                    challenge = r.headers.get("WWW-Authenticate", "")
                    r.close()
                    self._authenticate(ep, challenge)
                    r = self._send(ep, method, url, headers, stream=stream, data=data,
                                   auth_header=self._auth.get(ep.base), timeout=timeout)
                if r.status_code >= 500 and attempt < attempts and (data is None or isinstance(data, bytes)):
                    r.close()
                    last = None
                    self.sleep_backoff(attempt)
                    continue
                return r
            except requests.exceptions.SSLError as e:
                if ep.insecure and self._base(ep).startswith("https://") and not full_url:
                    # docker: an insecure registry may speak plain HTTP
                    self._scheme_fixed[ep.base] = "http://" + ep.base[len("https://"):]
                    last = e
                    attempt -= 1  # a change of scheme is not a retry
                    continue
                raise self._connection_error(ep, e)
            except requests.exceptions.RequestException as e:
                last = e
                if ep.insecure and self._base(ep).startswith("https://") and not full_url and \
                        isinstance(e, requests.exceptions.ConnectionError) and "refused" not in str(e).lower():
                    self._scheme_fixed[ep.base] = "http://" + ep.base[len("https://"):]
                    attempt -= 1
                    continue
                if not self._retryable(e) or attempt >= attempts:
                    raise self._connection_error(ep, e)
                self.sleep_backoff(attempt)
        assert last is not None
        raise self._connection_error(ep, last)

    def _authenticate(self, ep: Endpoint, challenge: str) -> None:
        """Turn a 401 challenge into an Authorization header (token or basic), or fail clearly."""
        import base64

        scheme, params = parse_challenge(challenge)
        creds = self._credentials(ep.host)
        if scheme == "bearer":
            token = self._fetch_token(ep, params, creds)
            self._auth[ep.base] = f"Bearer {token}"
            return
        if scheme == "basic":
            if not creds:
                raise self._err(ep, "unauthorized: authentication required", f"log in first: `rootless login {ep.host}`")
            if self._auth.get(ep.base, "").startswith("Basic"):
                raise self._err(ep, "unauthorized: incorrect username or password",
                                f"log in again: `rootless login {ep.host}`")
            raw = f"{creds[0]}:{creds[1]}".encode()
            self._auth[ep.base] = "Basic " + base64.b64encode(raw).decode()
            return
        raise self._err(ep, "unauthorized" + (f" (unsupported challenge `{scheme}`)" if scheme else ""),
                        f"log in first: `rootless login {ep.host}`")

    def _fetch_token(self, ep: Endpoint, params: Dict[str, str], creds: Optional[Tuple[str, str]]) -> str:
        import requests

        realm = params.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise self._err(ep, "the registry asked for a token without a valid realm", "the registry is misconfigured")
        scopes = [self._scope()] if self.repo else []
        q: List[Tuple[str, str]] = []
        if params.get("service"):
            q.append(("service", params["service"]))
        for s in scopes:
            q.append(("scope", s))
        if creds:
            q.append(("account", creds[0]))
        url = realm + ("&" if "?" in realm else "?") + urlencode(q)
        # docker sends the token request through the registry's own transport (same TLS trust)
        verify: Any = ep.verify
        try:
            r = self.session.get(url, auth=creds, verify=verify, timeout=(15, 60), stream=True,
                                 headers={"Accept-Encoding": "identity"})
            load_capped(r, MAX_SMALL_BODY, "the token")
        except RegistryError as e:
            raise self._err(ep, f"get a token from `{realm}`: {e}", e.hint)
        except requests.exceptions.RequestException as e:
            raise self._err(ep, f"get a token from `{realm}`: {_short(str(e))}", "check the token service of the registry")
        if r.status_code in (401, 403):
            if creds:
                raise self._err(ep, "unauthorized: incorrect username or password",
                                f"log in again: `rootless login {ep.host}`")
            raise self._err(ep, "unauthorized: authentication required", f"log in first: `rootless login {ep.host}`")
        if r.status_code != 200:
            raise self._err(ep, f"get a token from `{realm}`: HTTP {r.status_code}", "check the token service of the registry")
        try:
            doc = r.json()
        except ValueError:
            raise self._err(ep, f"get a token from `{realm}`: not JSON", "check the token service of the registry")
        token = doc.get("token") or doc.get("access_token")
        if not token:
            raise self._err(ep, f"get a token from `{realm}`: no token in the answer", "check the token service")
        return str(token)

    def check(self, ep: Endpoint, r, what: str, *, not_found: Optional[str] = None) -> None:
        """Raise a clear error for a failed response (registry error codes, 401, 403, 404)."""
        if r.status_code < 300:
            return
        code, message = _registry_error(r)
        r.close()
        if r.status_code == 401:
            raise self._err(ep, f"{what}: unauthorized: {message or 'authentication required'}",
                            f"log in first: `rootless login {ep.host}`")
        if r.status_code == 403:
            raise self._err(ep, f"{what}: denied: {message or 'requested access to the resource is denied'}",
                            f"check that your account may {self.verb} `{self.repo}` (`rootless login {ep.host}`)")
        if r.status_code == 404:
            raise self._err(ep, f"{what}: {message or 'not found'}",
                            not_found or "check the image name and tag; the repository may also require `rootless login`")
        raise self._err(ep, f"{what}: HTTP {r.status_code}" + (f": {code} {message}".rstrip() if code or message else ""),
                        "the registry failed; try again later")

    # --- API -----------------------------------------------------------------------------------
    def ping(self, ep: Endpoint) -> None:
        r = self.request(ep, "GET", "/v2/", retry=False)
        if r.status_code not in (200, 401):
            self.check(ep, r, "ping")
        r.close()

    def get_manifest(self, reference: str, *, accept: str = mf.ACCEPT, not_found: Optional[str] = None
                     ) -> Tuple[bytes, str, str]:
        """(bytes, content type, digest) of a manifest by tag or digest, trying mirrors first."""
        errors: List[str] = []
        for i, ep in enumerate(self.endpoints):
            last = i == len(self.endpoints) - 1
            try:
                r = self.request(ep, "GET", f"/v2/{self.repo}/manifests/{reference}", {"Accept": accept}, stream=True)
                if r.status_code >= 300 and not last:
                    code, msg = _registry_error(r)
                    r.close()
                    errors.append(f"{ep.host}: {r.status_code} {msg}")
                    continue
                self.check(ep, r, f"manifest for `{reference}`", not_found=not_found)
                data = self._body(ep, r)
            except RegistryError:
                if last:
                    raise
                continue
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            if reference.startswith("sha256:") and digest != reference:
                raise self._err(ep, f"manifest `{reference}` has digest `{digest}`",
                                "the registry served a manifest that does not match its digest")
            self.current = ep
            return data, r.headers.get("Content-Type", ""), digest
        raise RegistryError(f"{self.verb} `{self.what}`: no registry answered", "; ".join(errors) or None)

    def _body(self, ep: Endpoint, r, limit: int = MAX_MANIFEST) -> bytes:
        import requests
        import urllib3

        try:
            return load_capped(r, limit, "the manifest")
        except RegistryError as e:
            raise self._err(ep, str(e), e.hint)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            raise self._connection_error(ep, e)

    def blob_stream(self, digest: str, ep: Optional[Endpoint] = None, offset: int = 0):
        """A streamed response for a blob (redirects handled). Caller closes it."""
        ep = ep or self.current
        h = {"Range": f"bytes={offset}-"} if offset else {}
        r = self.request(ep, "GET", f"/v2/{self.repo}/blobs/{digest}", h, stream=True)
        self.check(ep, r, f"blob `{digest}`", not_found="the registry lost a blob of this image; push it again")
        return r

    def url_stream(self, url: str):
        """A foreign layer from its own URL (no registry credentials are sent)."""
        import requests

        r = self.session.get(url, stream=True, timeout=(15, 60))
        if r.status_code >= 300:
            r.close()
            raise requests.exceptions.HTTPError(f"HTTP {r.status_code}")
        return r

    def blob_exists(self, digest: str) -> bool:
        ep = self.current
        r = self.request(ep, "HEAD", f"/v2/{self.repo}/blobs/{digest}")
        r.close()
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        self.check(ep, r, f"check blob `{digest}`")
        return False

    def upload_blob(self, digest: str, path: str, size: int) -> None:
        """Monolithic upload: POST an upload session, PUT the content with ?digest=."""
        ep = self.current
        for attempt in range(1, self.attempts + 1):
            r = self.request(ep, "POST", f"/v2/{self.repo}/blobs/uploads/")
            self.check(ep, r, f"start upload of `{digest}`")
            loc = r.headers.get("Location")
            r.close()
            if not loc:
                raise self._err(ep, "upload: no Location in the answer", "the registry is misconfigured")
            url = urljoin(self._base(ep) + "/", loc)
            url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
            with open(path, "rb") as f:
                try:
                    r = self.request(ep, "PUT", url, {"Content-Type": "application/octet-stream",
                                                      "Content-Length": str(size)},
                                     data=f, full_url=True, retry=False, timeout=600)
                except RegistryError:
                    if attempt >= self.attempts:
                        raise
                    self.sleep_backoff(attempt)
                    continue
            if r.status_code >= 500 and attempt < self.attempts:
                r.close()
                self.sleep_backoff(attempt)
                continue
            self.check(ep, r, f"upload blob `{digest}`")
            r.close()
            return

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        ep = self.current
        r = self.request(ep, "PUT", f"/v2/{self.repo}/manifests/{reference}", {"Content-Type": media_type}, data=data)
        self.check(ep, r, f"put manifest `{reference}`")
        r.close()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def login_check(self, ep: Endpoint) -> None:
        """Verify credentials as docker login does: ``/v2/`` with the auth the challenge asks for."""
        r = self.request(ep, "GET", "/v2/", retry=False)
        self.check(ep, r, "log in")
        r.close()

    def iter_raw(self, r, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The body as sent (no Content-Encoding decoding: a blob's digest is of its bytes)."""
        raw = r.raw
        while True:
            b = raw.read(chunk, decode_content=False)
            if not b:
                break
            yield b


def load_capped(r, limit: int, what: str) -> bytes:
    """Read the body of streamed response ``r`` into memory, at most ``limit`` bytes once decoded
    (RegistryError past it), and make it ``r.content``. Content-Encoding gzip/deflate is inflated
    here with a bound: urllib3 would inflate a whole read at once, however large the result."""
    import zlib

    if getattr(r, "_content_consumed", False) and isinstance(getattr(r, "_content", None), bytes):
        return r._content  # type: ignore[no-any-return]
    enc = (r.headers.get("Content-Encoding") or "").strip().lower()
    d = None
    if enc in ("gzip", "x-gzip"):
        d = zlib.decompressobj(31)
    elif enc == "deflate":
        d = zlib.decompressobj(15)
    elif enc not in ("", "identity"):
        r.close()
        raise RegistryError(f"{what} has an unsupported Content-Encoding `{enc}`",
                            "the registry (or a proxy before it) is misconfigured")
    parts: List[bytes] = []
    n = 0
    try:
        while True:
            b = r.raw.read(1 << 16, decode_content=False)
            if not b:
                break
            while b:
                if d is not None:
                    out = d.decompress(b, limit + 1 - n)
                    b = d.unconsumed_tail
                else:
                    out, b = b, b""
                parts.append(out)
                n += len(out)
                if n > limit:
                    r.close()
                    raise RegistryError(f"{what} is larger than {limit >> 10} KiB",
                                        "the registry sent more than any real answer holds; "
                                        "it is misconfigured or hostile")
    except zlib.error as e:
        r.close()
        raise RegistryError(f"{what}: bad {enc} data: {e}", "the registry is misconfigured")
    body = b"".join(parts)
    r._content = body
    r._content_consumed = True
    r.raw.release_conn()
    return body


def _registry_error(r) -> Tuple[str, str]:
    try:
        if not getattr(r, "_content_consumed", False):
            load_capped(r, MAX_SMALL_BODY, "the error")
        doc = json.loads(r.content or b"{}")
        errs = doc.get("errors") or []
        if errs:
            e = errs[0]
            return str(e.get("code", "")), str(e.get("message", "")).lower()
        if doc.get("details") or doc.get("message"):
            return "", str(doc.get("details") or doc.get("message"))
    except (ValueError, AttributeError):
        pass
    except Exception:  # noqa: BLE001 - a streamed body that failed to read
        pass
    return "", ""


def _short(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    m = re.search(r"\(Caused by [A-Za-z]+\('?(.*?)'?\)\)?$", text)
    if m:
        text = m.group(1)
    return text[:200]
