"""rootless tag: create a tag TARGET_IMAGE that refers to SOURCE_IMAGE, like `docker tag`."""

from __future__ import annotations

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def main(args, ctx) -> int:
    from rootless.engine import events
    from rootless.image import reference
    from rootless.image.store import ImageStore

    store = ImageStore(ctx.config.data_root)
    img = store.require(args.source)
    target = reference.parse(args.target)
    if target.digest:
        raise UsageError(f"tag `{args.target}`: refusing to create a tag with a digest reference",
                         "a tag is NAME[:TAG]; digests come from the registry")
    store.tag(img.id, str(target.with_default_tag()))
    events.image(ctx.config, "tag", img.id, reference.familiar_string(str(target.with_default_tag())))
    return 0
