"""The json-file log driver, written and read as Docker does.

Each record is one line: ``{"log":"text\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}``.
A line longer than 16 KiB is split into records of 16 KiB whose ``log`` has no trailing newline
(docker's partial messages); a last line with no newline is written without one and is never glued
to the next record of the other stream. ``max-size``/``max-file`` rotate ``<id>-json.log`` into
``<id>-json.log.1`` ...; ``compress`` gzips the rotated files (``.1`` stays plain for a while in
docker; we compress all rotated files but the newest, like docker's compress does).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import BinaryIO, Dict, Iterator, List, Optional

from rootless.timefmt import parse_ns as parse_time
from rootless.timefmt import rfc3339nano

PARTIAL = 16 * 1024  # docker's bufio line buffer for the json-file driver


@dataclass(frozen=True)
class LogOptions:
    max_size: int = -1  # bytes; -1 = unlimited
    max_file: int = 1
    compress: bool = False

    @classmethod
    def from_opts(cls, opts: Dict[str, str]) -> LogOptions:
        from rootless.units import parse_size

        size = parse_size(opts["max-size"]) if opts.get("max-size") else -1
        nfile = int(opts.get("max-file", "1"))
        return cls(size, max(1, nfile), opts.get("compress", "false") == "true")


class JsonFileWriter:
    """Appends records; rotates by size. One writer per container (the monitor)."""

    def __init__(self, path: str, options: LogOptions = LogOptions(), clock=time.time_ns):
        self.path = path
        self.opts = options
        self.clock = clock
        self._pending: Dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._f: BinaryIO = open(path, "ab")  # noqa: SIM115
        self._size = self._f.tell()

    def write(self, stream: str, data: bytes) -> None:
        """Feed raw bytes of ``stream``; complete lines (or 16 KiB pieces) become records."""
        buf = self._pending[stream] + data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl == -1:
                if len(buf) - start >= PARTIAL:
                    self._record(stream, buf[start : start + PARTIAL])
                    start += PARTIAL
                    continue
                break
            if nl - start >= PARTIAL:
                self._record(stream, buf[start : start + PARTIAL])
                start += PARTIAL
                continue
            self._record(stream, buf[start : nl + 1])
            start = nl + 1
        self._pending[stream] = buf[start:]

    def flush_partial(self, stream: Optional[str] = None) -> None:
        """Write what is pending with no newline (end of stream)."""
        for s in [stream] if stream else list(self._pending):
            if self._pending[s]:
                self._record(s, self._pending[s])
                self._pending[s] = b""

    def _record(self, stream: str, chunk: bytes) -> None:
        rec = {"log": chunk.decode("utf-8", "replace"), "stream": stream, "time": rfc3339nano(self.clock())}
        line = (json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        if self.opts.max_size > 0 and self._size > 0 and self._size + len(line) > self.opts.max_size:
            self._rotate()
        self._f.write(line)
        self._f.flush()
        self._size += len(line)

    def _rotate(self) -> None:
        self._f.close()
        n = self.opts.max_file
        if n <= 1:
            self._f = open(self.path, "wb")  # noqa: SIM115 - max-file 1: truncate, as docker does
            self._size = 0
            return
        ext = ".gz" if self.opts.compress else ""
        oldest = f"{self.path}.{n - 1}"
        for cand in (oldest, oldest + ".gz"):
            if os.path.exists(cand):
                os.unlink(cand)
        for i in range(n - 2, 0, -1):
            for suffix in ("", ".gz"):
                src = f"{self.path}.{i}{suffix}"
                if os.path.exists(src):
                    os.rename(src, f"{self.path}.{i + 1}{suffix}")
        os.rename(self.path, f"{self.path}.1")
        if ext:
            _gzip_file(f"{self.path}.1")
        self._f = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self.flush_partial()
        self._f.close()


def _gzip_file(path: str) -> None:
    import gzip  # only when rotating with compress: the monitor stays small

    tmp = path + ".gz.tmp"
    with open(path, "rb") as src, gzip.open(tmp, "wb") as dst:
        while True:
            b = src.read(1 << 16)
            if not b:
                break
            dst.write(b)
    os.rename(tmp, path + ".gz")
    os.unlink(path)


@dataclass(frozen=True)
class Record:
    stream: str
    text: str
    time_ns: int
    time: str


def log_files(path: str) -> List[str]:
    """Oldest first: <path>.N[.gz] ... <path>.1[.gz], <path>."""
    d, base = os.path.split(path)
    rotated = []
    try:
        names = os.listdir(d or ".")
    except OSError:
        names = []
    for n in names:
        if n.startswith(base + "."):
            rest = n[len(base) + 1 :]
            num = rest[:-3] if rest.endswith(".gz") else rest
            if num.isdigit():
                rotated.append((int(num), os.path.join(d, n)))
    rotated.sort(reverse=True)
    files = [p for _, p in rotated]
    if os.path.exists(path):
        files.append(path)
    return files


def _records_of(path: str) -> Iterator[Record]:
    if path.endswith(".gz"):
        import gzip

        opener = gzip.open
    else:
        opener = open
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            for line in f:
                rec = _parse(line)
                if rec:
                    yield rec
    except OSError:
        return


def _parse(line: bytes) -> Optional[Record]:
    try:
        d = json.loads(line)
        return Record(d.get("stream", "stdout"), d.get("log", ""), parse_time(d["time"]), d["time"])
    except (ValueError, KeyError, IndexError):
        return None  # a torn last line of a crashed writer


def read(path: str, *, since_ns: int = 0, until_ns: int = 0, tail: int = -1) -> List[Record]:
    recs = []
    for f in log_files(path):
        for r in _records_of(f):
            if since_ns and r.time_ns < since_ns:
                continue
            if until_ns and r.time_ns > until_ns:
                continue
            recs.append(r)
    if tail >= 0:
        recs = recs[-tail:] if tail else []
    return recs


def follow(path: str, *, since_ns: int = 0, tail: int = -1, stop=lambda: False, interval: float = 0.1) -> Iterator[Record]:
    """Records so far, then new ones as they are written (across rotation), until stop() is true."""
    for r in read(path, since_ns=since_ns, tail=tail):
        yield r
    f = None
    ino = None
    buf = b""
    try:
        f = open(path, "rb")  # noqa: SIM115
        f.seek(0, os.SEEK_END)
        ino = os.fstat(f.fileno()).st_ino
    except OSError:
        pass
    while True:
        if f is not None:
            chunk = f.read()
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    r = _parse(ln)
                    if r:
                        yield r
                continue
        try:
            cur = os.stat(path).st_ino
        except OSError:
            cur = None
        if cur is not None and cur != ino:  # rotated: drain the old file, then take the new one
            if f is not None:
                rest = buf + f.read()
                for ln in rest.split(b"\n"):
                    r = _parse(ln)
                    if r:
                        yield r
                f.close()
            buf = b""
            f = open(path, "rb")  # noqa: SIM115
            ino = cur
            continue
        if stop():
            return
        time.sleep(interval)
