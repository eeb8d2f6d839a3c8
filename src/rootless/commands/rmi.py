"""rootless rmi: remove images, like `docker rmi` (also `rootless image rm`)."""

from __future__ import annotations

import sys
from typing import List

from rootless.errors import ImageError, NotFound, RootlessError


def add_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="Images to remove (name, name:tag, name@digest or id)")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")


def remove(store, arg: str, force: bool = False) -> List[str]:
    """Remove one image argument as docker does; returns the lines to print (Untagged:/Deleted:)."""
    from rootless.image import reference

    img = store.lookup(arg)
    if img is None:
        raise NotFound(f"No such image: {arg}", "list local images with `rootless images`")
    lines: List[str] = []
    # by name when the argument names one of the image's tags or digests, else by id (like docker)
    by_ref = None
    s = arg.strip()
    if not s.startswith("sha256:"):
        try:
            r = reference.parse(s)
            by_ref = r.digested if r.digest else str(r.with_default_tag())
        except RootlessError:
            by_ref = None
        if by_ref is not None and by_ref not in img.full_tags + img.full_digests:
            by_ref = None
    users = store.in_use_check(img.id)
    if by_ref is not None:
        remaining = [t for t in img.full_tags if t != by_ref]
        if users and not force and not remaining:
            raise ImageError(
                f"conflict: unable to remove repository reference \"{arg}\" (must force) - "
                f"container {users[0][:12]} is using its referenced image {img.short_id}",
                "remove the container first (`rootless rm`), or use -f to untag the image anyway")
        store.untag(by_ref)
        lines.append(f"Untagged: {reference.familiar_string(by_ref)}")
        if remaining:
            return lines
        # the last tag went: its digest references go too, then the image
        for d in img.full_digests:
            if d != by_ref:
                store.untag(d)
                lines.append(f"Untagged: {reference.familiar_string(d)}")
        if users:
            return lines  # forced: the image stays, dangling, for the container that uses it
    else:
        repos = {t.rsplit(":", 1)[0] for t in img.full_tags} | {d.split("@", 1)[0] for d in img.full_digests}
        if len(repos) > 1 and not force:
            raise ImageError(
                f"conflict: unable to delete {img.short_id} (must be forced) - image is referenced in multiple repositories",
                "remove the tags one by one (`rootless rmi NAME:TAG`), or use -f")
        if users and not force:
            raise ImageError(
                f"conflict: unable to delete {img.short_id} (must be forced) - image is being used by container {users[0][:12]}",
                "remove the container first (`rootless rm`), or use -f to untag it anyway")
        for t in img.full_tags + img.full_digests:
            store.untag(t)
            lines.append(f"Untagged: {reference.familiar_string(t)}")
        if users:
            return lines
    removed = store.remove_image(img)
    lines.append(f"Deleted: {img.id}")
    lines.extend(f"Deleted: {c}" for c in removed if c != img.id)
    return lines


def main(args, ctx) -> int:
    from rootless.cli import render_error
    from rootless.engine import events
    from rootless.image.store import ImageStore

    store = ImageStore(ctx.config.data_root)
    status = 0
    for arg in args.images:
        try:
            img_id = getattr(store.lookup(arg), "id", "")
            for line in remove(store, arg, args.force):
                sys.stdout.write(line + "\n")
                if line.startswith("Untagged: ") or line == f"Deleted: {img_id}":  # docker: id as actor and name
                    events.image(ctx.config, "untag" if line[0] == "U" else "delete", img_id, img_id)
        except RootlessError as e:
            if len(args.images) == 1:
                raise
            sys.stdout.flush()
            render_error(e)
            status = 1
    return status
