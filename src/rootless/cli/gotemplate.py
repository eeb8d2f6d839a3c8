"""A subset of Go's text/template, as docker's ``--format`` flags use it.

The lexer, parser and evaluator follow Go's text/template (lex.go, parse.go, exec.go, funcs.go)
closely enough that output and error messages match docker's in the common cases; docker's own
functions (json, split, join, title, lower, upper, pad, truncate) come from docker/cli's
``templates`` package, and ``format_rows`` mimics its formatter (``table``, header row, tabwriter).
Not supported: define/template/block, call/html/js/urlquery/slice, complex numbers.
Import it lazily: only commands that take ``--format`` need it.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from rootless.cli.tabwriter import tabwrite
from rootless.errors import RootlessError, UsageError

HINT = "see the fields with --format '{{json .}}'"
PARSE_HINT = "fix the --format template (Go text/template syntax, e.g. '{{.ID}}')"

_MISSING = object()
_SPACE = " \t\r\n"
_WORDS = {"true": "bool", "false": "bool", "nil": "nil"}
_WORDS.update((k, "kw") for k in "if else end range with define template block break continue".split())
_TOKEN_RE = re.compile(
    r"""(?P<right>[ \t\r\n]-\}\}|\}\})|(?P<space>[ \t\r\n]+?)(?=[ \t\r\n]-\}\}|[^ \t\r\n]|\Z)
    |(?P<declare>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<comma>,)|(?P<lparen>\()|(?P<rparen>\))
    |(?P<string>"(?:[^"\\\n]|\\[^\n])*")|(?P<raw>`[^`]*`)|(?P<char>'(?:[^'\\\n]|\\[^\n])*')
    |(?P<number>(?=[0-9+-]|\.[0-9])[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?
       |0[oObB][0-9_]*|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?)
    |(?P<word>[.$]\w*|\w+)""",
    re.X,
)
_COMMENT_END_RE = re.compile(r"(?:[ \t\r\n](-))?\}\}")
_SPACES_RE = re.compile(r"[ \t\r\n]*")
_ESC_RE = re.compile(r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")
_SIMPLE_ESC = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}
_QUOTE_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
              '"': '\\"', "\\": "\\\\"}
_Break = type("_Break", (Exception,), {})
_Continue = type("_Continue", (Exception,), {})
_FuncError = type("_FuncError", (Exception,), {"__doc__": "A builtin failed: 'error calling NAME: ...'."})


class _ParseError(Exception):
    def __init__(self, msg: str, pos: int):
        super().__init__(msg)
        self.pos = pos


# ---------------------------------------------------------------- values, printed the Go way

def _gotype(v: Any) -> str:
    for t, name in ((type(None), "interface {}"), (bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
                    ((list, tuple), "[]interface {}"), (dict, "map[string]interface {}")):
        if isinstance(v, t):
            return name
    return type(v).__name__


def _goquote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        out.append(_QUOTE_ESC.get(ch) or (ch if ch.isprintable() else
                   f"\\x{o:02x}" if o < 0x80 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"))
    return "".join(out) + '"'


def _gofloat(f: float, mode: str) -> str:
    """strconv.FormatFloat(f, ..., -1, 64) as fmt's %v ('g') or encoding/json ('j') use it."""
    if f != f or f in (float("inf"), float("-inf")):
        return "NaN" if f != f else "+Inf" if f > 0 else "-Inf"
    mant, _, exp = repr(abs(f)).partition("e")
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    dp = int(exp or 0) + len(ip) - (len(ip + fp) - len(digits))  # value = 0.DIGITS * 10**dp
    digits = digits.rstrip("0") or "0"
    dp, x = (1, 0) if digits == "0" else (dp, dp - 1)
    sign = "-" if repr(f).startswith("-") else ""
    if mode == "g" and (x < -4 or x >= 6) and digits != "0" or mode == "j" and f and not 1e-6 <= abs(f) < 1e21:
        tail = ("-" if x < 0 else "+") + (f"{abs(x):02d}" if mode == "g" else str(abs(x)))  # Go: e+06, json: e+21
        return sign + digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + "e" + tail
    if dp <= 0:
        return sign + "0." + "0" * -dp + digits
    return sign + (digits + "0" * (dp - len(digits)) if dp >= len(digits) else digits[:dp] + "." + digits[dp:])


def _fields(v: Any) -> Optional[Tuple[str, ...]]:
    """The field names of a dataclass instance, else None."""
    f = getattr(type(v), "__dataclass_fields__", None)
    return tuple(f) if f is not None and not isinstance(v, type) else None


def _sorted_items(d: dict) -> List[Tuple[Any, Any]]:
    try:
        return sorted(d.items(), key=lambda kv: kv[0])
    except TypeError:
        return sorted(d.items(), key=lambda kv: (type(kv[0]).__name__, str(kv[0])))


def _fmt_v(v: Any) -> str:
    """fmt's %v."""
    if v is None or isinstance(v, bool):
        return {None: "<nil>", True: "true", False: "false"}[v]
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (int, float)):
        return str(v) if isinstance(v, int) else _gofloat(v, "g")
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(map(_fmt_v, v)) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(_fmt_v(k) + ":" + _fmt_v(x) for k, x in _sorted_items(v)) + "]"
    names = _fields(v)
    return str(v) if names is None else "{" + " ".join(_fmt_v(getattr(v, f)) for f in names) + "}"


def _truth(v: Any) -> bool:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) > 0
    return v is not None and (v != 0 if isinstance(v, (bool, int, float)) else True)


def _go_json(v: Any) -> str:
    """encoding/json, compact, no HTML escaping (docker's ``json``). Dicts keep their order."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("json: unsupported value")
        return _gofloat(v, "j")
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(map(_go_json, v)) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(_go_json(k if isinstance(k, str) else _fmt_v(k)) + ":" + _go_json(x)
                              for k, x in v.items()) + "}"
    names = _fields(v)
    return _go_json(str(v) if names is None else {f: getattr(v, f) for f in names})


# ---------------------------------------------------------------- printf

_VERB_RE = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.S)


def _fmt_arg(v: Any, verb: str, flags: str, width: str, prec: Optional[str]) -> str:
    """One fmt verb applied to one argument; Go's %!verb(type=value) for a bad pairing."""
    bad = f"%!{verb}({_gotype(v)}={_fmt_v(v)})"
    pyspec = "%" + flags + width + ("." + prec if prec is not None else "")
    if verb == "T":
        body = "<nil>" if v is None else _gotype(v)
    elif isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_arg(e, verb, flags, width, prec) for e in v) + "]"
    elif isinstance(v, dict):
        return "map[" + " ".join(_fmt_arg(k, verb, flags, width, prec) + ":" + _fmt_arg(x, verb, flags, width, prec)
                                 for k, x in _sorted_items(v)) + "]"
    elif v is None:
        if verb != "v":
            return f"%!{verb}(<nil>)"
        body = "<nil>"
    elif isinstance(v, bool):
        if verb not in "vt":
            return bad
        body = _fmt_v(v)
    elif isinstance(v, int):
        if verb in "dvxXo":
            return (pyspec + ("d" if verb == "v" else verb)) % v
        if verb not in "bcqU":
            return bad
        q = _goquote(chr(v))[1:-1].replace('\\"', '"').replace("'", "\\'")
        body = {"b": format(v, "b"), "c": chr(v), "q": f"'{q}'", "U": f"U+{v:04X}"}[verb]
    elif isinstance(v, float):
        if verb in "eEfF" or (verb in "gG" and prec is not None):
            return (pyspec + verb) % v
        if verb not in "vgG":
            return bad
        body = ("+" if "+" in flags and v >= 0 else "") + _gofloat(v, "g")
    elif isinstance(v, str):
        if verb not in "svqxX":
            return f"%!{verb}(string={v})"
        body = {"s": v, "v": v, "q": _goquote(v), "x": v.encode().hex(), "X": v.encode().hex().upper()}[verb]
        body = body[:int(prec or 0)] if prec is not None and verb in "sv" else str.__str__(body)
    elif verb in "sv":
        body = _fmt_v(v)
    else:
        return bad
    return body.ljust(int(width or 0)) if "-" in flags else body.rjust(int(width or 0))


def _sprintf(fmt: str, *args: Any) -> str:
    used = 0

    def one(m: re.Match[str]) -> str:
        nonlocal used
        flags, width, prec, verb = m.groups()
        if verb in ("", "%"):
            return "%!(NOVERB)" if verb == "" else "%"
        if used >= len(args):
            return f"%!{verb}(MISSING)"
        used += 1
        return _fmt_arg(args[used - 1], verb, flags, width, prec)

    out = _VERB_RE.sub(one, fmt)
    if used < len(args):
        out += "%!(EXTRA " + ", ".join("<nil>" if a is None else _gotype(a) + "=" + _fmt_v(a) for a in args[used:]) + ")"
    return out


# ---------------------------------------------------------------- functions

def _f_index(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise _FuncError("index of untyped nil")
    v = item
    for i in indexes:
        if v is None:
            raise _FuncError("index of nil pointer")
        if isinstance(v, (list, tuple, str)):
            if i is None or not isinstance(i, int) or isinstance(i, bool):
                raise _FuncError("cannot index slice/array with " + ("nil" if i is None else "type " + _gotype(i)))
            seq = v.encode() if isinstance(v, str) else v
            if not 0 <= i < len(seq):
                raise _FuncError("index out of range: %d" % i)
            v = seq[i]
        elif isinstance(v, dict):
            if i is None:
                raise _FuncError("value is nil; should be of type string")
            if not isinstance(i, str) and all(isinstance(k, str) for k in v):
                raise _FuncError(f"value has type {_gotype(i)}; should be string")
            # a missing key gives the zero value: "" for a map of strings (labels), else nil
            v = v[i] if i in v else ("" if all(isinstance(x, str) for x in v.values()) else None)
        else:
            raise _FuncError(f"can't index item of type {_gotype(v)}")
    return v


def _f_len(v: Any) -> int:
    if v is None:
        raise _FuncError("len of nil pointer")
    if not isinstance(v, (str, list, tuple, dict)):
        raise _FuncError(f"len of type {_gotype(v)}")
    return len(v.encode() if isinstance(v, str) else v)


def _f_eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _FuncError("missing argument for comparison")
    for b in bs:
        k1, k2 = _gotype(a), _gotype(b)
        if k1 != k2 and a is not None and b is not None:
            raise _FuncError("incompatible types for comparison")
        if k1 == k2 and k1 in ("[]interface {}", "map[string]interface {}"):
            raise _FuncError(f"non-comparable type {_fmt_v(b)}: {k2}")
        if k1 == k2 and a == b:
            return True
    return False


def _f_lt(a: Any, b: Any) -> bool:
    k1, k2 = _gotype(a), _gotype(b)
    if k1 not in ("bool", "int", "float64", "string") or k2 not in ("bool", "int", "float64", "string"):
        raise _FuncError("invalid type for comparison")
    if k1 != k2 or k1 == "bool":
        raise _FuncError("incompatible types for comparison" if k1 != k2 else "invalid type for comparison")
    return bool(a < b)


def _f_print(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    return "".join((" " if i and not isinstance(a, str) and not isinstance(args[i - 1], str) else "") + _fmt_v(a)
                   for i, a in enumerate(args))


def _f_json(v: Any) -> str:
    try:
        return _go_json(v)
    except ValueError:
        return ""  # docker ignores the encoder's error and prints nothing


def _f_title(s: str) -> str:
    """strings.Title: upper-case the first letter of every word."""
    return "".join(ch.upper() if i == 0 or (not (s[i - 1].isalnum() or s[i - 1] == "_") if s[i - 1].isascii()
                                            else s[i - 1].isspace()) else ch for i, ch in enumerate(s))


def _f_truncate(s: str, n: int) -> str:
    if n < 0:
        raise _FuncError("runtime error: slice bounds out of range [:%d]" % n)
    return s[:n]


# name -> (function, parameter kinds); a: any, s: string, i: int, l: list; "*a" is variadic
_FUNCS: Dict[str, Tuple[Optional[Callable[..., Any]], Tuple[str, ...]]] = {
    "and": (None, ("a", "*a")), "or": (None, ("a", "*a")),  # evaluated lazily in _Exec.call
    "not": (lambda v: not _truth(v), ("a",)), "len": (_f_len, ("a",)), "index": (_f_index, ("a", "*a")),
    "print": (_f_print, ("*a",)), "printf": (_sprintf, ("s", "*a")),
    "println": (lambda *a: " ".join(map(_fmt_v, a)) + "\n", ("*a",)),
    "eq": (_f_eq, ("a", "*a")), "ne": (lambda a, b: not _f_eq(a, b), ("a", "a")), "lt": (_f_lt, ("a", "a")),
    "le": (lambda a, b: _f_lt(a, b) or _f_eq(a, b), ("a", "a")),
    "gt": (lambda a, b: not (_f_lt(a, b) or _f_eq(a, b)), ("a", "a")), "ge": (lambda a, b: not _f_lt(a, b), ("a", "a")),
    # docker/cli templates.basicFunctions
    "json": (_f_json, ("a",)), "split": (lambda s, sep: s.split(sep) if sep else list(s), ("s", "s")),
    "join": (lambda seq, sep: sep.join(map(_fmt_v, seq)), ("l", "s")), "title": (_f_title, ("s",)),
    "lower": (str.lower, ("s",)), "upper": (str.upper, ("s",)),
    "pad": (lambda s, a, b: s and " " * a + s + " " * b, ("s", "i", "i")), "truncate": (_f_truncate, ("s", "i")),
}
# docker's HeaderFunctions: in a table's header row these return their first argument unchanged
_HEADER_PASSTHRU = {"json", "split", "join", "title", "lower", "upper", "truncate"}
_KIND_NAMES = {"s": "string", "i": "int", "l": "[]string"}


# ---------------------------------------------------------------- parse tree

class _N:
    """A node. Kinds and parts: text(a=text); dot nil bool number string ident(a=value, b=source);
    field(a=names); var(a=name, b=names); chain(a=node, b=names); cmd(a=args);
    pipe(a=declared names, b=is assignment, c=cmds); action(a=pipe); if with range(a=pipe, b=body,
    c=else body or None); break continue."""

    __slots__ = ("k", "pos", "a", "b", "c")

    def __init__(self, k: str, pos: int, a: Any = None, b: Any = None, c: Any = None):
        self.k, self.pos, self.a, self.b, self.c = k, pos, a, b, c

    def __str__(self) -> str:  # Go's Node.String(), used in error messages
        k, a, b, c = self.k, self.a, self.b, self.c
        if k in ("text", "action", "break", "continue"):
            return a if k == "text" else "{{%s}}" % (a if k == "action" else k)
        if k in ("field", "var", "chain"):
            head = "" if k == "field" else a if k == "var" else f"({a})" if a.k == "pipe" else str(a)
            return head + "".join("." + n for n in (a if k == "field" else b))
        if k == "cmd":
            return " ".join(f"({x})" if x.k == "pipe" else str(x) for x in a)
        if k == "pipe":
            return (", ".join(a) + (" = " if b else " := ") if a else "") + " | ".join(map(str, c))
        if k in ("if", "with", "range"):
            tail = "" if c is None else "{{else}}" + "".join(map(str, c))
            return "{{" + f"{k} {a}" + "}}" + "".join(map(str, b)) + tail + "{{end}}"
        return b


# ---------------------------------------------------------------- lexer and parser

def _char_desc(ch: str) -> str:
    return f"U+{ord(ch):04X}" + (f" '{ch}'" if ch.isprintable() else "")


def _lex(text: str):
    """Yield (kind, value, pos) tokens like Go's lexer; raise _ParseError where it emits an error."""
    n, pos = len(text), 0
    while True:
        i = text.find("{{", pos)
        if i < 0:
            if pos < n:
                yield ("text", text[pos:], pos)
            yield ("eof", "", n)
            return
        ltrim = text[i + 2:i + 3] == "-" and text[i + 3:i + 4] in tuple(_SPACE)
        chunk = text[pos:i].rstrip(_SPACE) if ltrim else text[pos:i]
        if chunk:
            yield ("text", chunk, pos)
        p = i + 4 if ltrim else i + 2
        if text.startswith("/*", p):  # a comment is a whole action
            j = text.find("*/", p + 2)
            m = _COMMENT_END_RE.match(text, j + 2) if j >= 0 else None
            if not m:
                raise _ParseError("unclosed comment" if j < 0 else "comment ends before closing delimiter", i)
            pos = _SPACES_RE.match(text, m.end()).end() if m.group(1) else m.end()
            continue
        yield ("left", "{{", i)
        depth = 0
        while True:
            m = _TOKEN_RE.match(text, p)
            if not m:
                if p >= n:
                    raise _ParseError("unclosed action", n)
                raise _ParseError({'"': "unterminated quoted string", "`": "unterminated raw quoted string",
                                   "'": "unterminated character constant", ":": "expected :="}.get(text[p])
                                  or "unrecognized character in action: " + _char_desc(text[p]), p)
            kind, val, start, p = m.lastgroup, m.group(), p, m.end()
            if kind == "right":
                if depth:
                    raise _ParseError("unclosed left paren", start)
                yield ("right", "}}", p - 2)
                pos = _SPACES_RE.match(text, p).end() if len(val) == 4 else p
                break
            depth += {"lparen": 1, "rparen": -1}.get(kind, 0)
            if depth < 0:
                raise _ParseError("unexpected right paren U+0029 ')'", start)
            if kind in ("number", "word"):
                if kind == "number" and p < n and (text[p].isalnum() or text[p] == "_"):
                    raise _ParseError("bad number syntax: " + _goquote(text[start:p + 1]), start)
                if p < n and text[p] not in _SPACE + ".,|:()" and not text.startswith("}}", p):
                    raise _ParseError("bad character " + _char_desc(text[p]), p)
                if kind == "word":
                    kind = "dot" if val == "." else {".": "field", "$": "var"}.get(val[0]) or _WORDS.get(val, "ident")
            yield (kind, val, start)


def _unquote(src: str) -> str:
    """strconv.Unquote for "...", '...' and `...`."""
    if src[0] == "`":
        return src[1:-1].replace("\r", "")
    body, out, last = src[1:-1], bytearray(), 0
    for m in _ESC_RE.finditer(body):
        simple, x, octal, u4, u8 = m.groups()
        code = int(x or octal or u4 or u8 or "0", 16 if not octal else 8)
        if "\\" in body[last:m.start()] or simple == {'"': "'", "'": '"'}[src[0]] or (x or octal) and code > 255 \
                or code > 0x10FFFF or 0xD800 <= code < 0xE000:
            raise ValueError("invalid syntax")
        out += body[last:m.start()].encode()
        if simple or x or octal:
            out.append(_SIMPLE_ESC[simple] if simple else code)
        else:
            out += chr(code).encode()
        last = m.end()
    if "\\" in body[last:]:
        raise ValueError("invalid syntax")
    return (out + body[last:].encode()).decode("utf-8", "replace")


def _tokstr(tok: Tuple[str, str, int]) -> str:
    kind, val, _ = tok
    if kind in ("eof", "kw", "dot", "nil"):
        return "EOF" if kind == "eof" else f"<{val}>"
    return _goquote(val[:10]) + "..." if len(val) > 10 else _goquote(val)


_END, _ELSE = "{{end}}", "{{else}}"


class _Parser:
    """Go's parse.go, recursive descent over _lex's tokens with arbitrary backup."""

    def __init__(self, text: str):
        self.lex, self.toks, self.i = _lex(text), [], 0
        self.vars: List[str] = ["$"]
        self.range_depth = 0

    def error(self, msg: str) -> None:
        raise _ParseError(msg, self.toks[-1][2] if self.toks else 0)

    def next(self, skip_space: bool = False) -> Tuple[str, str, int]:
        while True:
            if self.i == len(self.toks):
                self.toks.append(next(self.lex))
            self.i += 1
            if not skip_space or self.toks[self.i - 1][0] != "space":
                return self.toks[self.i - 1]

    def peek(self, skip_space: bool = False) -> Tuple[str, str, int]:
        tok = self.next(skip_space)
        self.i -= 1
        return tok

    def unexpected(self, tok: Tuple[str, str, int], context: str) -> None:
        self.error(f"unexpected {_tokstr(tok)} in {context}")

    def expect_right(self, context: str) -> None:
        tok = self.next(True)
        if tok[0] != "right":
            self.unexpected(tok, context)

    def item_list(self, top: bool = False) -> Tuple[List[_N], Any]:
        nodes = []
        while self.peek(True)[0] != "eof":
            tok = self.next(True)
            n = _N("text", tok[2], tok[1]) if tok[0] == "text" else self.action() if tok[0] == "left" else \
                self.unexpected(tok, "input")
            if n is _END or n is _ELSE:
                if top:
                    self.error(f"unexpected {n}")
                return nodes, n
            nodes.append(n)
        if not top:
            self.error("unexpected EOF")
        return nodes, None

    def action(self) -> Any:
        kind, kw, pos = self.next(True)
        if kind != "kw":
            self.i -= 1
            return _N("action", pos, self.pipeline("command"))
        if kw in ("if", "with", "range"):
            return self.control(kw, pos)
        if kw in ("break", "continue"):
            if not self.range_depth:
                self.error("{{" + kw + "}} outside {{range}}")
            self.expect_right("{{" + kw + "}}")
            return _N(kw, pos)
        if kw == "else" and self.peek(True)[:2] in (("kw", "if"), ("kw", "with")):
            return _ELSE  # {{else if ...}}: the "if" is left for control() to parse
        if kw in ("else", "end"):
            self.expect_right(kw)
            return _ELSE if kw == "else" else _END
        self.error("{{" + kw + "}} is not supported")

    def control(self, kind: str, pos: int) -> _N:
        mark = len(self.vars)
        pipe = self.pipeline(kind)
        self.range_depth += kind == "range"
        body, nxt = self.item_list()
        self.range_depth -= kind == "range"
        orelse = None
        if nxt is _ELSE:
            tok = self.peek()
            if kind != "range" and tok[:2] == ("kw", kind):  # {{else if}} / {{else with}}: one shared {{end}}
                self.next()
                orelse = [self.control(kind, tok[2])]
            else:
                orelse, nxt = self.item_list()
                if nxt is not _END:
                    self.error(f"expected end; found {nxt}")
        del self.vars[mark:]
        return _N(kind, pos, pipe, body, orelse)

    def pipeline(self, context: str) -> _N:
        pipe = _N("pipe", self.peek(True)[2], [], False, [])
        while self.peek(True)[0] == "var":
            save, var, nxt = self.i, self.next(True), self.peek(True)
            if nxt[0] in ("assign", "declare", "comma"):
                self.next(True)
                pipe.a.append(var[1])
                self.vars.append(var[1])
                pipe.b = nxt[0] == "assign"
                if nxt[0] != "comma":
                    break
                if context == "range" and len(pipe.a) < 2:
                    if self.peek(True)[0] in ("var", "right", "rparen"):
                        continue
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            tok = self.next(True)
            if tok[0] in ("right", "rparen"):
                if not pipe.c:
                    self.error(f"missing value for {context}")
                for n, cmd in enumerate(pipe.c[1:]):
                    if cmd.a[0].k in ("bool", "dot", "nil", "number", "string"):
                        self.error("non executable command in pipeline stage %d" % (n + 2))
                self.i -= tok[0] == "rparen"
                return pipe
            if tok[0] not in ("bool", "char", "dot", "field", "ident", "number", "nil", "raw", "string", "var",
                              "lparen"):
                self.unexpected(tok, context)
            self.i -= 1
            cmd = _N("cmd", self.peek(True)[2], [])
            while True:
                self.peek(True)
                op = self.operand()
                if op is not None:
                    cmd.a.append(op)
                tok = self.next()
                if tok[0] in ("right", "rparen"):
                    self.i -= 1
                elif tok[0] not in ("space", "pipe"):
                    self.error(f"unexpected {_tokstr(tok)} in operand")
                if tok[0] != "space":
                    break
            pipe.c.append(cmd)

    def operand(self) -> Optional[_N]:
        node = self.term()
        if node is None or self.peek()[0] != "field":
            return node
        pos, names = self.peek()[2], []
        while self.peek()[0] == "field":
            names.append(self.next()[1][1:])
        if node.k in ("field", "var"):  # .A.B and $x.A stay one node, positioned at the second field
            return _N(node.k, pos, *((node.a + tuple(names),) if node.k == "field" else (node.a, tuple(names))))
        if node.k not in ("ident", "pipe"):
            self.error(f"unexpected . after term {_goquote(str(node))}")
        return _N("chain", pos, node, tuple(names))

    def term(self) -> Optional[_N]:
        kind, val, pos = self.next(True)
        try:
            if kind == "ident" and val not in _FUNCS:
                self.error(f"function {_goquote(val)} not defined")
            if kind in ("ident", "dot", "nil", "bool"):
                return _N(kind, pos, val == "true" if kind == "bool" else val if kind == "ident" else None, val)
            if kind == "var" and val not in self.vars:
                self.error(f"undefined variable {_goquote(val)}")
            if kind in ("var", "field"):
                return _N(kind, pos, val, ()) if kind == "var" else _N(kind, pos, (val[1:],))
            if kind in ("string", "raw"):
                return _N("string", pos, _unquote(val), val)
            if kind == "char":
                s = _unquote(val)
                if len(s) != 1:
                    self.error(f"malformed character constant: {val}")
                return _N("number", pos, ord(s), val)
            if kind == "number":
                return _N("number", pos, _number(val), val)
        except ValueError as e:
            self.error(str(e))
        if kind == "lparen":
            pipe = self.pipeline("parenthesized pipeline")
            self.next()  # the ")": the lexer has checked that parentheses balance
            return pipe
        self.i -= 1
        return None


def _number(src: str) -> Any:
    t = src.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[0-7]+", t):
            return int(t, 8)
        if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|\d+)", t):
            return int(t, 0)
        return float.fromhex(t) if "x" in t.lower() else float(t)
    except ValueError:
        raise ValueError("illegal number syntax: " + _goquote(src)) from None


# ---------------------------------------------------------------- execution

class _Header(str):
    """A column title: the value of every field in a table's header row (the data is _Header(""))."""

    path: Tuple[str, ...] = ()


class _Exec:
    """Go's exec.go: walks the tree, tracking the current node for error messages like Go's s.at()."""

    def __init__(self, text: str, data: Any, header: bool = False):
        self.text, self.header, self.out = text, header, []
        self.headers: Dict[str, str] = data if header else {}
        self.vars: List[Tuple[str, Any]] = [("$", _Header() if header else data)]
        self.node: Optional[_N] = None

    def error(self, msg: str, node: Optional[_N] = None) -> None:
        node = node or self.node
        pos = node.pos if node else 0
        line, col = self.text.count("\n", 0, pos) + 1, len(self.text[self.text.rfind("\n", 0, pos) + 1:pos].encode())
        raise RootlessError('template: :%d:%d: executing "" at <%s>: %s' % (line, col, node, msg), hint=HINT)

    def walk(self, dot: Any, nodes: List[_N]) -> None:
        for n in nodes:
            self.node = n
            if n.k == "text":
                self.out.append(n.a)
            elif n.k == "action":
                v = self.pipe(dot, n.a)
                if not n.a.a:
                    self.out.append("<no value>" if v is None else _fmt_v(v))
            elif n.k in ("break", "continue"):
                raise _Break() if n.k == "break" else _Continue()
            elif n.k == "range":
                self.walk_range(dot, n)
            else:  # if, with
                mark = len(self.vars)
                v = self.pipe(dot, n.a)
                if _truth(v) or n.c is not None:
                    self.walk(v if n.k == "with" and _truth(v) else dot, n.b if _truth(v) else n.c)
                del self.vars[mark:]

    def walk_range(self, dot: Any, n: _N) -> None:
        mark = len(self.vars)
        v, decl = self.pipe(dot, n.a), n.a.a
        if isinstance(v, (list, tuple)) or v is None:
            items = list(enumerate(v or ()))
        elif isinstance(v, dict):
            items = _sorted_items(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            if len(decl) > 1:
                self.error("can't use %d to iterate over more than one variable" % v)
            items = [(i, i) for i in range(v)]
        else:
            self.error(f"range can't iterate over {_fmt_v(v)}")
        inner = len(self.vars)
        for key, elem in items:
            for depth, val in ((1, elem), (2, key))[:len(decl)]:
                self.vars[-depth] = (self.vars[-depth][0], val)
            try:
                self.walk(elem, n.b)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[inner:]
        if not items and n.c is not None:
            self.walk(dot, n.c)
        del self.vars[mark:]

    def pipe(self, dot: Any, p: _N) -> Any:
        self.node, v = p, _MISSING
        for cmd in p.c:
            v = self.command(dot, cmd, v)
        for name in p.a:
            if not p.b:
                self.vars.append((name, v))
                continue
            idx = [i for i, (nm, _) in enumerate(self.vars) if nm == name]
            if not idx:
                self.error(f"undefined variable: {name}")
            self.vars[idx[-1]] = (name, v)
        return v

    def not_a_function(self, cmd: _N, final: Any) -> None:
        if len(cmd.a) > 1 or final is not _MISSING:
            self.error(f"can't give argument to non-function {cmd.a[0]}", cmd.a[0])

    def command(self, dot: Any, cmd: _N, final: Any) -> Any:
        first = cmd.a[0]
        if first.k in ("field", "chain"):
            recv = dot if first.k == "field" else self.arg(dot, first.a)
            return self.chain(dot, recv, first, first.a if first.k == "field" else first.b, cmd.a[1:], final)
        if first.k == "var":
            return self.variable(dot, first, cmd, final)
        if first.k == "ident":
            return self.call(dot, first, cmd, cmd.a[1:], final)
        self.not_a_function(cmd, final)
        if first.k == "pipe":
            return self.pipe(dot, first)
        self.node = first
        if first.k == "nil":
            self.error("nil is not a command")
        return dot if first.k == "dot" else first.a

    def variable(self, dot: Any, v: _N, cmd: Optional[_N], final: Any) -> Any:
        self.node = v
        values = [val for name, val in self.vars if name == v.a]
        if not values:
            self.error(f"undefined variable: {v.a}")
        if not v.b:
            if cmd is not None:
                self.not_a_function(cmd, final)
            return values[-1]
        return self.chain(dot, values[-1], v, v.b, cmd.a[1:] if cmd else [], final)

    def chain(self, dot: Any, recv: Any, node: _N, names: Tuple[str, ...], args: List[_N], final: Any) -> Any:
        self.node = node
        for name in names[:-1]:
            recv = self.field(dot, recv, name, node, [], _MISSING)
        return self.field(dot, recv, names[-1], node, args, final)

    def field(self, dot: Any, recv: Any, name: str, node: _N, args: List[_N], final: Any) -> Any:
        has_args = bool(args) or final is not _MISSING
        if self.header and isinstance(recv, _Header):
            path = recv.path + (name,)
            h = _Header(self.headers.get(".".join(path)) or self.headers.get(name)
                        or re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).upper())
            h.path = path
            return h
        if isinstance(recv, dict):
            if has_args:
                self.error(f"{name} is not a method but has arguments")
            if name not in recv:
                self.error(f"map has no entry for key {_goquote(name)}")
            return recv[name]
        if recv is None:
            self.error(f"nil pointer evaluating interface {{}}.{name}")
        attr = _MISSING
        if not isinstance(recv, (str, int, float, list, tuple)) and not name.startswith("_"):
            attr = getattr(recv, name, _MISSING)
        if attr is _MISSING:
            self.error(f"can't evaluate field {name} in type {_gotype(recv)}")
        if callable(attr) and not isinstance(attr, type):
            argv = [self.arg(dot, a) for a in args] + ([] if final is _MISSING else [final])
            try:
                return attr(*argv)
            except RootlessError:
                raise
            except Exception as e:  # Go's safeCall turns a panic into an error the same way
                self.error(f"error calling {name}: {e}", node)
        if has_args:
            self.error(f"{name} has arguments but cannot be invoked as function")
        return attr

    def arg(self, dot: Any, n: _N) -> Any:
        self.node = n
        if n.k in ("field", "chain"):
            recv = dot if n.k == "field" else self.arg(dot, n.a)
            return self.chain(dot, recv, n, n.a if n.k == "field" else n.b, [], _MISSING)
        if n.k in ("var", "pipe", "ident"):
            return self.variable(dot, n, None, _MISSING) if n.k == "var" else self.pipe(dot, n) if n.k == "pipe" \
                else self.call(dot, n, n, [], _MISSING)
        return dot if n.k == "dot" else n.a

    def typed(self, dot: Any, n: Optional[_N], kind: str, value: Any = _MISSING, at: Optional[_N] = None) -> Any:
        """Evaluate the argument ``n`` (or take the pipeline's ``value``) for a parameter of ``kind``."""
        if kind == "a":
            return self.arg(dot, n) if value is _MISSING else value
        want = _KIND_NAMES[kind]
        if n is not None and n.k in ("nil", "bool", "number", "string"):  # Go converts literals by syntax
            self.node = n
            if n.k == "nil" and kind != "l":
                self.error(f"cannot assign nil to {want}")
            if n.k == "string" and kind == "s" or n.k == "number" and kind == "i" and isinstance(n.a, int):
                return n.a
            if kind != "l":
                self.error(f"expected {'integer' if kind == 'i' else want}; found {n}")
        v = self.arg(dot, n) if value is _MISSING else value
        if v is None and kind == "l":
            return []
        if v is None:
            self.error(f"invalid value; expected {want}", at or n)
        if not isinstance(v, {"s": str, "i": int, "l": (list, tuple)}[kind]) or isinstance(v, bool):
            self.error(f"wrong type for value; expected {want}; got {_gotype(v)}", at or n)
        return v

    def call(self, dot: Any, ident: _N, cmd: _N, args: List[_N], final: Any) -> Any:
        self.node, name = ident, ident.a
        fn, params = _FUNCS[name]
        variadic, n_in = params[-1][0] == "*", len(args) + (final is not _MISSING)
        if variadic and n_in < len(params) - 1 or not variadic and n_in != len(params):
            self.error("wrong number of args for %s: want %s%d got %d" % (
                name, "at least " if variadic else "", len(params) - variadic, len(args) if variadic else n_in))
        if fn is None:  # and/or short-circuit: the first false (and) / true (or) argument, else the last
            for a in args:
                v = self.arg(dot, a)
                if _truth(v) == (name == "or"):
                    return v
            return final if final is not _MISSING else v
        header = self.header and name in _HEADER_PASSTHRU
        kinds = ["a" if header else params[min(i, len(params) - 1)].lstrip("*") for i in range(n_in)]
        argv = [self.typed(dot, a, k) for a, k in zip(args, kinds)]
        if final is not _MISSING:
            argv.append(self.typed(dot, None, kinds[-1], final, at=ident))
        if header:
            return argv[0]
        try:
            return fn(*argv)
        except _FuncError as e:
            self.error(f"error calling {name}: {e}", cmd)


# ---------------------------------------------------------------- public API

class Template:
    """A parsed template; ``execute`` may be called any number of times, from any thread."""

    __slots__ = ("text", "root")

    def __init__(self, text: str, root: List[_N]):
        self.text, self.root = text, root

    def execute(self, data: Any) -> str:
        """Render ``data``; a failure raises RootlessError with Go's message and a hint."""
        ex = _Exec(self.text, data)
        ex.walk(data, self.root)
        return "".join(ex.out)

    def header(self, headers: Dict[str, str]) -> str:
        """Render the header row of a table (docker's HeaderFunctions; errors are ignored, like docker)."""
        ex = _Exec(self.text, headers, header=True)
        try:
            ex.walk(_Header(), self.root)
        except RootlessError:
            pass
        return "".join(ex.out)


@functools.lru_cache(maxsize=128)
def parse(text: str) -> Template:
    """Parse ``text``; raise UsageError, worded like docker's, if it is not a valid template."""
    try:
        return Template(text, _Parser(text).item_list(top=True)[0])
    except _ParseError as e:
        msg, pos = str(e), e.pos
    except RecursionError:
        msg, pos = "template is nested too deeply", 0
    line = text.count("\n", 0, pos) + 1
    raise UsageError("template parsing error: template: :%d: %s" % (line, msg), hint=PARSE_HINT)


def render(text: str, data: Any) -> str:
    return parse(text).execute(data)


def format_rows(text: str, rows: List[Any], headers: Optional[Dict[str, str]] = None) -> str:
    """Render ``rows`` like docker's formatter for ps/images/stats; every row ends with a newline.

    ``table ...`` adds a header row (``headers`` maps a field name, or a dotted path, to its title;
    other fields get their name split at case changes and upper-cased: CreatedAt -> CREATED AT) and
    aligns the ``\\t``-separated columns; ``json`` means ``{{json .}}``; a backslash followed by
    ``t`` or ``n`` is a tab or a newline. A bare ``table`` renders nothing: substitute the command's
    default table format first.
    """
    table = text.startswith("table")
    body = "{{json .}}" if text == "json" else text[5:] if table else text
    tmpl = parse(re.sub(r"\\[tn]", lambda m: "\t" if m.group() == "\\t" else "\n", body.strip(" ")))
    out = "".join(tmpl.execute(row) + "\n" for row in rows)
    return tabwrite(tmpl.header(headers or {}) + "\n" + out) if table else out
