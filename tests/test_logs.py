"""json-file logs: Docker's record format, partial lines, rotation, reading in order."""

import gzip
import json
import os

import pytest

from rootless import logs

pytestmark = pytest.mark.nosubuid


class Clock:
    def __init__(self):
        self.t = 1_700_000_000_123_456_789

    def __call__(self):
        self.t += 1000
        return self.t


def test_record_shape_is_dockers(tmp_path):
    p = tmp_path / "c-json.log"
    w = logs.JsonFileWriter(str(p), clock=Clock())
    w.write("stdout", b"hello\nwor")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"ld\n")
    w.close()
    lines = p.read_text().splitlines()
    assert lines[0] == '{"log":"hello\\n","stream":"stdout","time":"2023-11-14T22:13:20.123457789Z"}'
    assert [json.loads(x)["log"] for x in lines] == ["hello\n", "oops\n", "world\n"]


def test_last_line_without_newline_is_kept_and_not_glued(tmp_path):
    p = tmp_path / "c-json.log"
    w = logs.JsonFileWriter(str(p), clock=Clock())
    w.write("stdout", b"no newline")
    w.write("stderr", b"err\n")
    w.close()
    recs = logs.read(str(p))
    assert [(r.stream, r.text) for r in recs] == [("stderr", "err\n"), ("stdout", "no newline")]


def test_long_lines_split_at_16k(tmp_path):
    p = tmp_path / "c-json.log"
    w = logs.JsonFileWriter(str(p))
    w.write("stdout", b"x" * 40000 + b"\n")
    w.close()
    parts = [r.text for r in logs.read(str(p))]
    assert [len(x) for x in parts] == [16384, 16384, 7233]
    assert not parts[0].endswith("\n") and parts[-1].endswith("\n")
    assert "".join(parts) == "x" * 40000 + "\n"


def test_rotation_keeps_max_file_and_reads_in_order(tmp_path):
    p = tmp_path / "c-json.log"
    w = logs.JsonFileWriter(str(p), logs.LogOptions(max_size=1024, max_file=3))
    for i in range(200):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for n in names:
        assert os.path.getsize(tmp_path / n) <= 1024
    texts = [r.text for r in logs.read(str(p))]
    nums = [int(t.split()[1]) for t in texts]
    assert nums == list(range(nums[0], 200))  # contiguous, in order, newest last
    assert nums[0] > 0  # the oldest were dropped


def test_rotation_compress(tmp_path):
    p = tmp_path / "c-json.log"
    w = logs.JsonFileWriter(str(p), logs.LogOptions(max_size=512, max_file=3, compress=True))
    for i in range(100):
        w.write("stderr", f"line {i}\n".encode())
    w.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    with gzip.open(tmp_path / "c-json.log.1.gz") as f:
        assert b'"stream":"stderr"' in f.readline()
    nums = [int(r.text.split()[1]) for r in logs.read(str(p))]
    assert nums == list(range(nums[0], 100))


def test_tail_since_until(tmp_path):
    p = tmp_path / "c-json.log"
    clock = Clock()
    w = logs.JsonFileWriter(str(p), clock=clock)
    for i in range(10):
        w.write("stdout", f"{i}\n".encode())
    w.close()
    all_ = logs.read(str(p))
    assert [r.text for r in logs.read(str(p), tail=3)] == ["7\n", "8\n", "9\n"]
    assert logs.read(str(p), tail=0) == []
    mid = all_[5].time_ns
    assert [r.text for r in logs.read(str(p), since_ns=mid)] == [f"{i}\n" for i in range(5, 10)]
    assert [r.text for r in logs.read(str(p), until_ns=mid)] == [f"{i}\n" for i in range(0, 6)]


def test_torn_last_line_is_ignored(tmp_path):
    p = tmp_path / "c-json.log"
    p.write_text('{"log":"a\\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}\n{"log":"b')
    assert [r.text for r in logs.read(str(p))] == ["a\n"]


def test_time_roundtrip():
    ns = 1_700_000_000_000_000_001
    assert logs.parse_time(logs.rfc3339nano(ns)) == ns
    assert logs.rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert logs.parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000_000_000_000
