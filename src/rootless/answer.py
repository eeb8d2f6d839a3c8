"""The answer of a helper process that handled hostile content: one bounded JSON document.

A child that unpacked a registry's layer, or worked in a container's files, may have been made to
run someone else's code; so what it sends back is data, parsed against a schema, never unpickled
or evaluated (DESIGN.md, "Security rules"). Shared by ``runtime.userns.run_in_userns`` and the
copy helper (``copyhelper``). The document is one of:

    {"ok": true, "value": <json value>}
    {"ok": false, "type": <name>, "message": str, "hint": str|null, "exit_code": 0..255}

``type`` is optional; it names one of the RootlessError classes in ``ERROR_TYPES`` (anything else
is refused), so that a caller can still catch e.g. ``LayerTooBig``. Messages lose their control
characters (they are printed on the user's terminal) and are cut at ``MSG_CAP`` characters.
Anything else, or more than ``cap`` bytes, is a malformed answer.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Optional, Tuple

from rootless.errors import RootlessError

MSG_CAP = 4096  # characters of a message or hint kept
_INT_DIGITS = 32  # an int with more digits is refused (int() of a long one is quadratic on 3.9)

# name -> (module, attribute): the only error classes an answer may name; imported on use.
ERROR_TYPES: Dict[str, Tuple[str, str]] = {
    "RootlessError": ("rootless.errors", "RootlessError"),
    "UsageError": ("rootless.errors", "UsageError"),
    "ConfigError": ("rootless.errors", "ConfigError"),
    "NotFound": ("rootless.errors", "NotFound"),
    "ToolError": ("rootless.errors", "ToolError"),
    "RegistryError": ("rootless.errors", "RegistryError"),
    "ImageError": ("rootless.errors", "ImageError"),
    "RuntimeSetupError": ("rootless.errors", "RuntimeSetupError"),
    "LayerTooBig": ("rootless.image.unpack", "LayerTooBig"),
    "HelperError": ("rootless.engine.copyhelper", "HelperError"),
}

_KEYS = frozenset(("ok", "value", "type", "message", "hint", "exit_code"))


class Malformed(ValueError):
    """The answer does not fit the schema (the caller turns it into its own RootlessError)."""


# --- child side -----------------------------------------------------------------------------------


def error_type(exc: BaseException) -> str:
    """The name of the nearest class of ``exc`` that ``ERROR_TYPES`` allows."""
    for cls in type(exc).__mro__:
        ref = ERROR_TYPES.get(cls.__name__)
        if ref is not None and ref[0] == cls.__module__:
            return cls.__name__
    return "RootlessError"


def ok(value: Any) -> Dict[str, Any]:
    return {"ok": True, "value": value}


def error(message: str, hint: Optional[str], exit_code: int, type_name: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {"ok": False, "message": message[:MSG_CAP], "hint": None if hint is None else hint[:MSG_CAP],
                           "exit_code": exit_code}
    if type_name:
        out["type"] = type_name
    return out


def from_error(e: RootlessError) -> Dict[str, Any]:
    return error(e.message, e.hint, e.exit_code, error_type(e))


def dump(doc: Dict[str, Any], cap: int) -> bytes:
    """``doc`` as bytes to send; a value that is not JSON, or too long, becomes an error answer."""
    try:
        data = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError) as e:
        return json.dumps(error(f"send the answer: {type(e).__name__}: {e}"[:MSG_CAP],
                                "this is a bug in rootless; please report it", 125)).encode()
    if len(data) > cap:
        return json.dumps(error(f"send the answer: {len(data)} bytes, more than the {cap} allowed",
                                "this is a bug in rootless; please report it", 125)).encode()
    return data


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# --- parent side ----------------------------------------------------------------------------------


def read_bounded(fd: int, cap: int) -> bytes:
    """Read ``fd`` to EOF, at most ``cap + 1`` bytes (one more tells the caller it was too long).
    Closes ``fd``."""
    with os.fdopen(fd, "rb") as f:
        return f.read(cap + 1)


def text(v: Any, what: str = "text") -> str:
    """A string from the answer, safe to print: no control characters, at most MSG_CAP long."""
    if not isinstance(v, str):
        raise Malformed(f"{what} is not a string")
    return "".join(c if c.isprintable() else "?" for c in v[:MSG_CAP])


def _parse_int(s: str) -> int:
    if len(s) > _INT_DIGITS:
        raise Malformed("number too long")
    return int(s)


def _no_constant(s: str) -> Any:
    raise Malformed(f"{s} is not JSON")


def parse(data: bytes, cap: int, check: Optional[Callable[[Any], Any]] = None) -> Any:
    """The value of a good answer (passed through ``check``, which raises ValueError or TypeError on a
    value of the wrong shape); raises the error the answer carries, or Malformed.

    ``data`` must not be empty (the caller says what a child that never answered means)."""
    if len(data) > cap:
        raise Malformed("too long")
    try:
        doc = json.loads(data.decode("utf-8"), parse_int=_parse_int, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise Malformed(f"not JSON: {type(e).__name__}") from None
    if not isinstance(doc, dict) or not set(doc) <= _KEYS:
        raise Malformed("not an answer")
    if doc.get("ok") is True:
        if set(doc) != {"ok", "value"}:
            raise Malformed("not an answer")
        value = doc["value"]
        if check is None:
            return value
        try:
            return check(value)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise Malformed(f"value: {e}") from None
    if doc.get("ok") is not False or "value" in doc:
        raise Malformed("ok")
    message = text(doc.get("message"), "message")
    hint = doc.get("hint")
    hint = None if hint is None else text(hint, "hint")
    code = doc.get("exit_code")
    if type(code) is not int or not 0 <= code <= 255:
        raise Malformed("exit_code")
    type_name = doc.get("type", "RootlessError")
    if type_name not in ERROR_TYPES:
        raise Malformed("type")
    raise _make_error(type_name, message, hint, code)


def _make_error(type_name: str, message: str, hint: Optional[str], code: int) -> RootlessError:
    import importlib

    mod, attr = ERROR_TYPES[type_name]
    cls: Any = RootlessError
    try:
        c = getattr(importlib.import_module(mod), attr)
        if isinstance(c, type) and issubclass(c, RootlessError):
            cls = c
    except (ImportError, AttributeError):
        pass
    return cls(message, hint, exit_code=code)


# --- schemas for the common values (for ``parse``'s ``check``) --------------------------------------


def none(v: Any) -> None:
    """The function returns nothing."""
    if v is not None:
        raise Malformed("expected null")
    return None


def count(v: Any) -> int:
    """A non-negative int (a size, a number of entries)."""
    if type(v) is not int or v < 0:
        raise Malformed("expected a non-negative integer")
    return v
