"""Output bits the object commands share (images, image, history, system, volume, network):
the y/N prompt of the prune commands, --format rows, and the image table rows.

Rendering only: the values come from the engine facades (rootless.engine.images, ...).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Iterable, List


def confirm(text: str, force: bool) -> bool:
    """docker's prune prompt: ``text``, then ``Are you sure you want to continue? [y/N]``."""
    if force:
        return True
    sys.stdout.write(text + "\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def format_rows(text: str, rows: List[Dict[str, Any]], headers: Dict[str, str]) -> str:
    """--format: docker's Go templates via rootless.cli.gotemplate ('table ...', 'json', plain)."""
    from rootless.cli import gotemplate

    out = gotemplate.format_rows(text, rows, headers)
    return out if out.endswith("\n") or not out else out + "\n"


def short_id(image_id: str, no_trunc: bool = False) -> str:
    return image_id if no_trunc else image_id[7:19]


def since(created: str) -> str:
    """A CREATED column: ``2 weeks ago`` (docker's go-units), ``N/A`` when there is no time."""
    from rootless.image.progress import since as since_

    return since_(created)


def image_row(row: Any, no_trunc: bool = False) -> Dict[str, Any]:
    """One ``rootless images`` row (an engine.images.ImageRow) as the --format fields docker has."""
    from rootless.units import human_size

    return {
        "ID": short_id(row.id, no_trunc),
        "Repository": row.repository,
        "Tag": row.tag,
        "Digest": row.digest,
        "CreatedSince": since(row.created),
        "CreatedAt": row.created,
        "Size": human_size(row.size),
        "VirtualSize": human_size(row.size),
        "SharedSize": "N/A",
        "UniqueSize": "N/A",
        "Containers": "N/A",
    }


def delete_lines(items: Iterable[Any]) -> str:
    """``Untagged: x`` / ``Deleted: y`` lines of rmi (engine.images.Deleted items)."""
    return "".join(f"{d.kind}: {d.ref}\n" for d in items)


def prune_text(report: Any) -> str:
    """``Deleted Images:`` with docker's lowercase ``untagged:``/``deleted:`` lines, then the
    ``Total reclaimed space`` line (an engine.images.PruneReport)."""
    from rootless.units import human_size

    out = ""
    if report.deleted:
        out = "Deleted Images:\n" + "".join(f"{d.kind.lower()}: {d.ref}\n" for d in report.deleted) + "\n"
    return out + f"Total reclaimed space: {human_size(report.reclaimed)}\n"
