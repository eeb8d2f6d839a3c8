"""rootless events: the engine's events feed (engine/events.py), as ``docker events`` shows it."""

from __future__ import annotations

import sys
from typing import Any, Dict

from rootless.errors import UsageError

# Go field names of docker's events.Message (what --format templates use) -> its JSON keys
_GO_NAMES = {"Status": "status", "ID": "id", "From": "from", "Scope": "scope", "Time": "time", "TimeNano": "timeNano"}


class Message(dict):
    """A message as a template sees it: ``{{json .}}`` gives the JSON keys, ``{{.ID}}`` the Go fields
    (an absent omitempty field is its zero value, as Go's struct field would be)."""

    def __contains__(self, key: object) -> bool:
        return key in _GO_NAMES or dict.__contains__(self, key)

    def __getitem__(self, key: Any) -> Any:
        if not dict.__contains__(self, key) and key in _GO_NAMES:
            return self.get(_GO_NAMES[key], 0 if key in ("Time", "TimeNano") else "")
        return dict.__getitem__(self, key)


def add_arguments(p) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], metavar="filter",
                   help="Filter output based on conditions provided (container=, image=, event=, label=, "
                        "type=, volume=, network=)")
    p.add_argument("--format", default=None, metavar="string",
                   help="Format the output using the given Go template ('json' for JSON lines)")
    p.add_argument("--since", default=None, metavar="string",
                   help="Show all events created since timestamp (RFC 3339, Unix time or a duration such as 10m)")
    p.add_argument("--until", default=None, metavar="string", help="Stream events until this timestamp")


def line(msg: Dict[str, Any]) -> str:
    """docker's plain line: ``TIME TYPE ACTION ID (k=v, ...)``, the time with nine digits."""
    from rootless import timefmt

    actor = msg.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    text = f"{timefmt.fixed_nano(msg['timeNano'])} {msg['Type']} {msg['Action']} {actor.get('ID', '')}"
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text + "\n"


def _timestamp(flag: str, value: str) -> int:
    from rootless import timefmt

    try:
        return timefmt.parse_timestamp_ns(value)
    except ValueError as e:
        raise UsageError(f"parse {flag} `{value}`: {e}",
                         "e.g. --since 10m, --since 2026-12-02T18:00:00Z or --since 1796000000") from None


def main(args, ctx) -> int:
    from rootless.engine import events

    filters = events.parse_filters(args.filter)
    since = _timestamp("--since", args.since) if args.since else None
    until = _timestamp("--until", args.until) if args.until else None
    render = line
    if args.format:
        from rootless.cli import gotemplate

        text = "{{json .}}" if args.format == "json" else args.format
        tmpl = gotemplate.parse(text)

        def render(msg: Dict[str, Any]) -> str:
            return tmpl.execute(Message(msg)) + "\n"

    out = sys.stdout
    try:
        for msg in events.read(ctx.config, since=since, until=until, filters=filters, follow=True):
            out.write(render(msg))
            out.flush()
    except KeyboardInterrupt:  # ctrl-c ends the stream, as docker's (a closed pipe: the CLI's main)
        return 0
    return 0
