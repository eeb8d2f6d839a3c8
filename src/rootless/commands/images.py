"""rootless images: list images, like `docker images` (also `rootless image ls`)."""

from __future__ import annotations

import fnmatch
import sys
from typing import Any, Dict, List, Optional, Tuple

from rootless.errors import UsageError

HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
}


def add_arguments(p) -> None:
    p.add_argument("repository", nargs="?", help="Show only images of this repository (REPOSITORY[:TAG])")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output (dangling=true|false, reference=PATTERN)")
    p.add_argument("--format", help="Format output using a Go template ('table', 'json', 'table TEMPLATE')")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")


# --- output helpers shared by the image commands ---------------------------------------------------

def format_rows(text: str, rows: List[Dict[str, Any]], headers: Dict[str, str]) -> str:
    """--format: docker's Go templates via rootless.cli.gotemplate ('table ...', 'json', plain)."""
    from rootless.cli import gotemplate

    out = gotemplate.format_rows(text, rows, headers)
    return out if out.endswith("\n") or not out else out + "\n"


def short_id(image_id: str, no_trunc: bool = False) -> str:
    return image_id if no_trunc else image_id[7:19]


def parse_filters(items: List[str], allowed: Tuple[str, ...]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for it in items:
        key, sep, val = it.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): `{it}`", "for example --filter dangling=true")
        if key not in allowed:
            raise UsageError(f"invalid filter '{key}'", "supported filters: " + ", ".join(allowed))
        out.setdefault(key, []).append(val)
    return out


def _bool_filter(vals: List[str], name: str) -> bool:
    v = vals[-1].lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise UsageError(f"invalid filter '{name}={vals[-1]}'", f"use {name}=true or {name}=false")


def _ref_matches(pattern: str, familiar_repo: str, tag: Optional[str]) -> bool:
    """docker's reference filter: a glob on the familiar name, or on name:tag."""
    if fnmatch.fnmatchcase(familiar_repo, pattern):
        return True
    return tag is not None and fnmatch.fnmatchcase(f"{familiar_repo}:{tag}", pattern)


def _split_repo_tag(familiar: str) -> Tuple[str, str]:
    if "@" in familiar:
        return familiar.split("@", 1)[0], "<none>"
    slash = familiar.rfind("/")
    colon = familiar.rfind(":")
    if colon > slash:
        return familiar[:colon], familiar[colon + 1:]
    return familiar, "<none>"


def image_rows(images, no_trunc: bool = False, filters: Optional[Dict[str, List[str]]] = None,
               repository: Optional[str] = None) -> List[Dict[str, Any]]:
    from rootless.image.progress import human_size, since

    filters = filters or {}
    rows: List[Dict[str, Any]] = []
    dangling_f = _bool_filter(filters["dangling"], "dangling") if "dangling" in filters else None
    repo_filter = None
    if repository:
        from rootless.image import reference

        r = reference.parse(repository)
        repo_filter = (r.familiar_name, r.tag)
    for img in images:
        if dangling_f is not None and img.dangling != dangling_f:
            continue
        digests_by_repo: Dict[str, List[str]] = {}
        for d in img.repo_digests:
            repo, dig = d.split("@", 1)
            digests_by_repo.setdefault(repo, []).append(dig)
        pairs: List[Tuple[str, str]] = [_split_repo_tag(t) for t in img.repo_tags]
        tagged_repos = {p[0] for p in pairs}
        for repo in digests_by_repo:
            if repo not in tagged_repos:
                pairs.append((repo, "<none>"))
        if not pairs:
            pairs = [("<none>", "<none>")]
        for repo, tag in pairs:
            if "reference" in filters:
                if repo == "<none>" or not any(_ref_matches(p, repo, None if tag == "<none>" else tag)
                                               for p in filters["reference"]):
                    continue
            if repo_filter is not None:
                if repo != repo_filter[0] or (repo_filter[1] and tag != repo_filter[1]):
                    continue
            dig = (digests_by_repo.get(repo) or ["<none>"])[0]
            rows.append({
                "ID": short_id(img.id, no_trunc),
                "Repository": repo,
                "Tag": tag,
                "Digest": dig,
                "CreatedSince": since(img.created),
                "CreatedAt": img.created,
                "Size": human_size(img.size),
                "VirtualSize": human_size(img.size),
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                "Containers": "N/A",
            })
    return rows


def main(args, ctx) -> int:
    from rootless.image.store import ImageStore

    filters = parse_filters(args.filter, ("dangling", "reference"))
    store = ImageStore(ctx.config.data_root)
    rows = image_rows(store.list(), args.no_trunc, filters, args.repository)
    if args.quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    fmt = args.format
    if not fmt or fmt == "table":
        cols = ["Repository", "Tag"] + (["Digest"] if args.digests else []) + ["ID", "CreatedSince", "Size"]
        fmt = "table " + "\t".join("{{." + c + "}}" for c in cols)
        table = [[HEADERS[c] for c in cols]] + [[str(r[c]) for c in cols] for r in rows]
        from rootless.cli.tabwriter import table as tabwrite

        sys.stdout.write(tabwrite(table))
        return 0
    sys.stdout.write(format_rows(fmt, rows, HEADERS))
    return 0
