"""run_in_userns: the child's answer is bounded JSON parsed against a schema, never unpickled.

The child unpacks registry layers and walks container files; if hostile content took it over, all
it can do to the host side is send bytes on its answer pipe. The functions below play that
compromised child: they write to the answer pipe themselves and exit.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time

import pytest

from rootless import answer, idmap
from rootless.errors import ImageError, RootlessError
from rootless.image.unpack import LayerTooBig, UnpackResult
from rootless.runtime import userns
from rootless.storage import layers

# --- the compromised child ------------------------------------------------------------------------


def _write_pipes() -> set:
    """Our fds above 2 that are the write end of a pipe."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
        except (OSError, StopIteration, ValueError):
            continue
        if flags & os.O_ACCMODE == os.O_WRONLY:
            out.add(fd)
    return out


def _answer_fd(before: list) -> int:
    new = sorted(_write_pipes() - set(before))
    if len(new) != 1:
        raise RuntimeError(f"cannot tell the answer pipe: {new}")
    return new[0]


class _MakeDir:
    """Unpickling this runs os.mkdir(path): a pickle that runs code in whoever loads it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def send_raw(before: list, data_hex: str, repeat: int = 1) -> None:
    """Write these bytes (``repeat`` times) as the answer, then exit before the real one goes out."""
    fd = _answer_fd(before)
    data = bytes.fromhex(data_hex)
    for _ in range(repeat):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    os._exit(0)


def evil_pickle(marker: str) -> bytes:
    # shaped like the old answer ("ok", value): the old parent unpickled it and returned normally
    return pickle.dumps(("ok", _MakeDir(marker)), protocol=pickle.HIGHEST_PROTOCOL)


def returns(value):
    return value


def returns_too_much():
    return "x" * (userns.ANSWER_CAP + 1)


def raises_layer_too_big():
    raise LayerTooBig("unpack layer `sha256:1`: too big", "raise max-layer-size", exit_code=3)


class _OwnImageError(ImageError):
    """A subclass the answer's allowlist does not name: it arrives as its nearest allowed base."""


def raises_own_error():
    raise _OwnImageError("own error", None)


def raises_with_escapes():
    raise ImageError("unpack layer `a\x1b]0;pwned\x07b`: bad\r\n", "hint\x1b[2J")


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.nosubuid
def test_a_pickle_from_the_child_is_never_loaded(tmp_path):
    marker = tmp_path / "unpickled"
    before = sorted(_write_pipes())
    with pytest.raises(RootlessError) as ei:
        userns.run_in_userns(send_raw, before, evil_pickle(str(marker)).hex(), ids=idmap.load())
    assert "malformed answer" in ei.value.message
    assert "send_raw" in ei.value.message
    assert not marker.exists()
    # the copy-helper's old attack, a protocol-0 pickle calling os.system, is refused the same way
    evil = f"cposix\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(RootlessError) as ei:
        userns.run_in_userns(send_raw, before, evil.hex(), ids=idmap.load())
    assert "malformed answer" in ei.value.message
    assert not marker.exists()


@pytest.mark.nosubuid
def test_a_pickle_from_a_reexecuted_child_is_never_loaded(tmp_path):
    """A threaded caller (`pull` unpacks layers from a thread pool) re-executes Python for the child."""
    marker = tmp_path / "unpickled"
    before = sorted(_write_pipes())
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not userns.is_single_threaded()
        with pytest.raises(RootlessError) as ei:
            userns.run_in_userns(send_raw, before, evil_pickle(str(marker)).hex(), ids=idmap.load())
        assert userns.run_in_userns(returns, {"a": [1, None]}, ids=idmap.load()) == {"a": [1, None]}
    finally:
        stop.set()
        t.join()
    assert "malformed answer" in ei.value.message
    assert not marker.exists()


@pytest.mark.nosubuid
def test_forged_answers_are_refused():
    before = sorted(_write_pipes())
    forged = [
        b"\x80\x04N.",  # pickle of None
        b"not json",
        b"[" * 100000,  # deeper than json parses
        b'{"ok": true, "value": 1, "message": "x"}',
        b'{"ok": "yes", "value": 1}',
        b'{"ok": true, "value": NaN}',
        b'{"ok": true, "value": ' + b"9" * 5000 + b"}",  # int() of this is slow on 3.9
        b'{"ok": false, "type": "os.system", "message": "m", "hint": null, "exit_code": 1}',
        b'{"ok": false, "type": "SystemExit", "message": "m", "hint": null, "exit_code": 1}',
        b'{"ok": false, "message": 1, "hint": null, "exit_code": 1}',
        b'{"ok": false, "message": "m", "hint": null, "exit_code": 999}',
        b'{"ok": false, "message": "m", "hint": null, "exit_code": true}',
        b"\xff\xfe",
    ]
    for data in forged:
        with pytest.raises(RootlessError) as ei:
            userns.run_in_userns(send_raw, before, data.hex(), ids=idmap.load())
        assert "malformed answer" in ei.value.message, data[:40]
    # a value of the wrong shape for the caller's schema
    with pytest.raises(RootlessError) as ei:
        userns.run_in_userns(returns, "12", ids=idmap.load(), schema=answer.count)
    assert "malformed answer" in ei.value.message
    assert userns.run_in_userns(returns, 12, ids=idmap.load(), schema=answer.count) == 12


@pytest.mark.nosubuid
def test_an_oversized_answer_is_refused():
    before = sorted(_write_pipes())
    # valid JSON, but 2 MiB of it: the parent stops reading after ANSWER_CAP and kills the child
    head = b'{"ok": true, "value": "'
    chunk = b"x" * (1 << 16)
    t0 = time.monotonic()
    with pytest.raises(RootlessError) as ei:
        userns.run_in_userns(send_raw, before, (head + chunk).hex(), 32, ids=idmap.load())
    assert "malformed answer" in ei.value.message
    assert time.monotonic() - t0 < 20
    # an honest child whose value is too long says so instead of sending it
    with pytest.raises(RootlessError) as ei:
        userns.run_in_userns(returns_too_much, ids=idmap.load())
    assert "more than the" in ei.value.message


@pytest.mark.nosubuid
def test_errors_arrive_with_their_class_message_and_hint():
    with pytest.raises(LayerTooBig) as ei:
        userns.run_in_userns(raises_layer_too_big, ids=idmap.load())
    assert ei.value.message == "unpack layer `sha256:1`: too big"
    assert ei.value.hint == "raise max-layer-size" and ei.value.exit_code == 3
    with pytest.raises(ImageError) as ei:
        userns.run_in_userns(raises_own_error, ids=idmap.load())
    assert type(ei.value) is ImageError and ei.value.message == "own error" and ei.value.hint is None
    # no terminal control characters reach the user's screen
    with pytest.raises(ImageError) as ei:
        userns.run_in_userns(raises_with_escapes, ids=idmap.load())
    assert ei.value.message == "unpack layer `a?]0;pwned?b`: bad??"
    assert ei.value.hint == "hint?[2J"


@pytest.mark.nosubuid
def test_ordinary_values_round_trip():
    values = [0, -5, 2**62, 1.5, True, None, "", "h\u00e9llo \u2603", [1, "a", None], {"a": {"b": [1, 2]}},
              ("a", 1)]
    for v in values:
        got = userns.run_in_userns(returns, v, ids=idmap.load())
        assert got == (list(v) if isinstance(v, tuple) else v)
        assert type(got) is (list if isinstance(v, tuple) else type(v))


def test_the_unpack_answer_is_checked():
    good = layers._build_answer(UnpackResult(3, 10, 2048, ("device nodes skipped (e.g. /dev/x\x1b[2J)",),
                                             "sha256:" + "a" * 64), 4096)
    good = json.loads(json.dumps(good))
    res, size = layers._build_result(good)
    assert size == 4096 and (res.entries, res.data_bytes, res.tar_bytes) == (3, 10, 2048)
    assert res.notes == ("device nodes skipped (e.g. /dev/x?[2J)",) and res.diff_id == "sha256:" + "a" * 64
    # a hostile layer's notes are cut to size by the child
    many = UnpackResult(1, 1, 1, tuple("n" * 100000 for _ in range(500)), "sha256:" + "b" * 64)
    cut = layers._build_answer(many, 1)
    assert len(cut["notes"]) == layers.MAX_NOTES and all(len(n) <= layers.MAX_NOTE for n in cut["notes"])
    assert len(json.dumps(cut)) < userns.ANSWER_CAP
    for bad in (
        dict(good, size="1"),
        dict(good, size=-2),
        dict(good, entries=-1),
        dict(good, entries=True),
        dict(good, notes=["x"] * (layers.MAX_NOTES + 1)),
        dict(good, notes=[1]),
        dict(good, diff_id="sha256:../../x"),
        dict(good, extra=1),
        [good],
    ):
        with pytest.raises(ValueError):
            layers._build_result(bad)
