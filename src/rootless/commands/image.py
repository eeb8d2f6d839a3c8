"""rootless image: manage images (ls, inspect, rm, prune, tag, history, save, load, push, pull)."""

from __future__ import annotations

import json
import sys

from rootless.errors import NotFound, UsageError

# subcommand -> (the top-level command it is an alias of, help); inspect and prune live here
SUBCOMMANDS = {
    "ls": ("images", "List images"),
    "list": ("images", "List images"),
    "inspect": (None, "Display detailed information on one or more images"),
    "rm": ("rmi", "Remove one or more images"),
    "remove": ("rmi", "Remove one or more images"),
    "prune": (None, "Remove unused images"),
    "tag": ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "history": ("history", "Show the history of an image"),
    "save": ("save", "Save one or more images to a tar archive"),
    "load": ("load", "Load an image from a tar archive"),
    "push": ("push", "Upload an image to a registry"),
    "pull": ("pull", "Download an image from a registry"),
}


def _alias(word: str):
    from rootless.cli import command_module

    return command_module(word)


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="image_command", metavar="COMMAND")
    for name, (word, text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=text, description=text)
        if word is not None:
            _alias(word).add_arguments(sp)
        elif name == "inspect":
            add_inspect_arguments(sp)
        elif name == "prune":
            add_prune_arguments(sp)


def main(args, ctx) -> int:
    name = args.image_command
    if not name:
        raise UsageError("image: a subcommand is needed", "see 'rootless image --help' (ls, inspect, rm, prune, ...)")
    word = SUBCOMMANDS[name][0]
    if word is not None:
        return int(_alias(word).main(args, ctx) or 0)
    if name == "inspect":
        return inspect_main(args, ctx)
    return prune_main(args, ctx)


# --- inspect ------------------------------------------------------------------------------------


def add_inspect_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="Format output using a Go template")


def inspect_main(args, ctx) -> int:
    from rootless.cli import render_error
    from rootless.engine import images

    out = []
    missing = []
    for name in args.images:
        try:
            out.append(images.inspect(ctx.config, name))
        except NotFound as e:
            missing.append(e)
    if args.format:
        from rootless.cli import gotemplate

        for d in out:
            sys.stdout.write(gotemplate.render(args.format, d) + "\n")
    else:
        sys.stdout.write(json.dumps(out, indent=4) + "\n")
    if missing:
        sys.stdout.flush()
        for e in missing:
            render_error(e)
        return 1
    return 0


# --- prune --------------------------------------------------------------------------------------


def add_prune_arguments(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (until=, label=)")


def prune_main(args, ctx) -> int:
    from rootless.cli.output import confirm, prune_text
    from rootless.engine import images

    until = images.parse_until(images.parse_filters(args.filter, images.PRUNE_FILTERS))
    text = ("WARNING! This will remove all images without at least one container associated to them."
            if args.all else "WARNING! This will remove all dangling images.")
    if not confirm(text, args.force):
        return 0
    sys.stdout.write(prune_text(images.prune(ctx.config, args.all, until)))
    return 0
