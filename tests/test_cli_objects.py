"""cli/objects.py's per-object loop: docker's output and exit status for commands over several objects."""

from __future__ import annotations

import pytest

from rootless.cli import objects
from rootless.errors import NotFound, RootlessError

pytestmark = pytest.mark.nosubuid


def fn(ref):
    if ref.startswith("bad"):
        raise RootlessError(f"stop container `{ref}`: it is stuck", "try rm -f")
    if ref == "gone":
        raise NotFound(f"No such container: {ref}", "see `rootless ps -a`")
    return ref.upper()


def test_each_prints_successes_renders_failures_goes_on_and_exits_1(capsys):
    assert objects.each(["a", "bad1", "b", "gone", "c"], fn) == 1
    out, err = capsys.readouterr()
    assert out == "a\nb\nc\n"
    assert err == ("error: stop container `bad1`: it is stuck\nhint: try rm -f\n"
                   "error: No such container: gone\nhint: see `rootless ps -a`\n")


def test_each_all_good_is_0_and_show_picks_the_line(capsys):
    assert objects.each(["a", "b"], fn, show=lambda ref, res: f"{ref}={res}") == 0
    assert capsys.readouterr() == ("a=A\nb=B\n", "")
    assert objects.each(["a"], fn, show=lambda ref, res: None) == 0
    assert capsys.readouterr() == ("", "")


def test_each_without_hints_as_inspect(capsys):
    assert objects.each(["gone"], fn, hints=False) == 1
    assert capsys.readouterr() == ("", "error: No such container: gone\n")


def test_inspect_each_renders_what_it_found(capsys):
    assert objects.inspect_each(["x", "gone"], lambda n: fn(n) and {"Name": n}, None) == 1
    out, err = capsys.readouterr()
    assert out == '[\n    {\n        "Name": "x"\n    }\n]\n' and err == "error: No such container: gone\n"
    assert objects.inspect_each(["x"], lambda n: {"Name": n}, "{{.Name}}") == 0
    assert capsys.readouterr().out == "x\n"


def test_an_error_that_is_not_ours_is_not_swallowed():
    def boom(ref):
        raise KeyError(ref)

    with pytest.raises(KeyError):
        objects.each(["a"], boom)
