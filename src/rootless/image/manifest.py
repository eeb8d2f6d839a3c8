"""Manifests: media types, parsing of Docker schema2 / OCI manifests, lists and indexes, platforms."""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from rootless.errors import ImageError, UsageError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_ND_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_ND_LAYER_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_ND_LAYER_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

FOREIGN_TYPES = (DOCKER_FOREIGN_GZIP, OCI_ND_LAYER, OCI_ND_LAYER_GZIP, OCI_ND_LAYER_ZSTD)


def compression_of(media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none`` for a layer media type; raises for a type that is not a layer."""
    mt = media_type.split(";")[0].strip()
    if mt.endswith("+gzip") or mt.endswith(".tar.gzip") or mt.endswith("tar.gz"):
        return "gzip"
    if mt.endswith("+zstd") or mt.endswith(".tar.zstd"):
        return "zstd"
    if mt.endswith(".tar") or mt.endswith(".diff.tar") or mt in (DOCKER_LAYER, OCI_LAYER, OCI_ND_LAYER):
        return "none"
    raise ImageError(
        f"pull layer: unsupported layer media type `{media_type}`",
        "this image uses a layer format rootless cannot unpack (known: tar, tar+gzip, tar+zstd)",
    )


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return s + (f"/{self.variant}" if self.variant else "")

    @staticmethod
    def from_json(d: Optional[Dict[str, Any]]) -> Optional[Platform]:
        if not d:
            return None
        return Platform(str(d.get("os", "")), str(d.get("architecture", "")), str(d.get("variant", "") or ""),
                        str(d.get("os.version", "") or ""))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: Tuple[str, ...] = ()
    platform: Optional[Platform] = None
    annotations: Dict[str, str] = field(default_factory=dict)

    @staticmethod
    def from_json(d: Dict[str, Any], where: str) -> Descriptor:
        try:
            return Descriptor(
                str(d.get("mediaType", "")), str(d["digest"]), int(d["size"]),
                tuple(str(u) for u in d.get("urls") or ()), Platform.from_json(d.get("platform")),
                dict(d.get("annotations") or {}),
            )
        except (KeyError, TypeError, ValueError):
            raise ImageError(f"parse {where}: a descriptor lacks digest or size", "the image in the registry is malformed")

    def to_json(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            p = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                p["variant"] = self.platform.variant
            d["platform"] = p
        return d

    @property
    def is_foreign(self) -> bool:
        return self.media_type in FOREIGN_TYPES


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: Tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: Tuple[Descriptor, ...]


def parse(data: bytes, content_type: str = "", where: str = "manifest"):
    """Parse manifest bytes into a Manifest or an Index (by mediaType field, else Content-Type)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImageError(f"parse {where}: not valid JSON", "the registry sent something that is not a manifest")
    if not isinstance(doc, dict):
        raise ImageError(f"parse {where}: not a JSON object", "the registry sent something that is not a manifest")
    mt = doc.get("mediaType") or content_type.split(";")[0].strip()
    if not mt:
        if "manifests" in doc:
            mt = OCI_INDEX
        elif "config" in doc and "layers" in doc:
            mt = OCI_MANIFEST
    if mt in (SCHEMA1, SCHEMA1_SIGNED) or doc.get("schemaVersion") == 1:
        raise ImageError(
            f"parse {where}: Docker Image manifest schema 1 is not supported",
            "schema 1 was removed from docker too; push the image again with a current tool",
        )
    if mt in INDEX_TYPES:
        ms = tuple(Descriptor.from_json(m, where) for m in doc.get("manifests") or [])
        return Index(mt, ms)
    if mt in MANIFEST_TYPES:
        if not isinstance(doc.get("config"), dict):
            raise ImageError(f"parse {where}: no config descriptor", "the image in the registry is malformed")
        cfg = Descriptor.from_json(doc["config"], where)
        layers = tuple(Descriptor.from_json(x, where) for x in doc.get("layers") or [])
        return Manifest(mt, cfg, layers)
    raise ImageError(
        f"parse {where}: unsupported manifest media type `{mt}`",
        "rootless understands Docker schema2, OCI manifests, Docker manifest lists and OCI indexes",
    )


# --- platforms ---------------------------------------------------------------------------------

_ARCH = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5l": ("arm", "v5"), "i386": ("386", ""),
    "i686": ("386", ""), "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
}


def host_platform(machine: Optional[str] = None) -> Platform:
    arch, variant = _ARCH.get(machine or _platform.machine(), (machine or _platform.machine(), ""))
    return Platform("linux", arch, variant)


def normalize_platform(p: Platform) -> Platform:
    """containerd's platforms.Normalize: aliases (x86_64, aarch64) and default variants."""
    arch, variant = p.architecture.lower(), p.variant.lower()
    if arch in ("x86_64", "x86-64"):
        arch = "amd64"
    elif arch == "aarch64":
        arch = "arm64"
    elif arch in ("i386", "i686"):
        arch = "386"
    elif arch in ("armhf",):
        arch, variant = "arm", variant or "v7"
    elif arch == "armel":
        arch, variant = "arm", variant or "v6"
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""  # arm64 with no variant means v8
    if arch == "arm" and variant in ("", "7"):
        variant = "v7"
    if arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(p.os.lower(), arch, variant)


def parse_platform(text: str) -> Platform:
    parts = text.strip().split("/")
    if len(parts) not in (1, 2, 3) or not all(parts):
        raise UsageError(
            f"parse platform `{text}`: expected os/arch[/variant]",
            "for example --platform linux/amd64 or --platform linux/arm/v7",
        )
    if len(parts) == 1:
        # containerd accepts a bare arch or os
        if parts[0] in ("linux", "windows", "darwin", "freebsd"):
            return normalize_platform(Platform(parts[0], host_platform().architecture, host_platform().variant))
        return normalize_platform(Platform("linux", parts[0]))
    return normalize_platform(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def matches(want: Platform, offered: Optional[Platform]) -> bool:
    if offered is None:
        return False
    w, o = normalize_platform(want), normalize_platform(offered)
    if w.os != o.os or w.architecture != o.architecture:
        return False
    if w.variant and o.variant and w.variant != o.variant:
        return False
    if w.variant and not o.variant:
        # arm/v7 may run an image that does not say its variant; we prefer exact matches below
        return True
    return True


def _variant_rank(want: Platform, offered: Platform) -> int:
    w, o = normalize_platform(want), normalize_platform(offered)
    if w.variant == o.variant:
        return 0
    if not o.variant:
        return 1
    return 2


def choose(index: Index, want: Platform, what: str) -> Descriptor:
    """The manifest of ``index`` for platform ``want``; an error listing what is offered."""
    cands = [m for m in index.manifests if m.media_type in MANIFEST_TYPES or not m.media_type]
    # attestation manifests (buildkit) have platform unknown/unknown: never candidates
    fits = [m for m in cands if m.platform is not None and matches(want, m.platform)]
    if fits:
        fits.sort(key=lambda m: _variant_rank(want, m.platform))  # type: ignore[arg-type]
        return fits[0]
    offered = sorted({str(m.platform) for m in cands if m.platform and m.platform.os != "unknown"})
    raise ImageError(
        f"pull `{what}`: no matching manifest for {want} in the manifest list entries",
        ("the image offers: " + ", ".join(offered) + "; choose one with --platform") if offered
        else "the image offers no platform; check the image",
    )
