"""The container facade (rootless.engine): cheap to import, documented, typed."""

from __future__ import annotations

import inspect as pyinspect
import json
import os
import subprocess
import sys

import pytest

from rootless import engine

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
pytestmark = pytest.mark.nosubuid

FACADE = ["resolve", "inspect", "ps", "ps_rows", "start", "restart_candidates", "wait", "check_signal", "stop",
          "kill", "restart", "pause", "unpause", "rename", "update", "restart_policy", "rm", "prune", "exec",
          "top", "port", "logs", "sample_stats", "stats_row", "split_copy_arg", "copy_from", "copy_to", "export",
          "diff", "commit"]


def test_importing_the_facade_loads_no_submodule():
    code = ("import json, sys; import rootless.engine; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('rootless.'))))")
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": SRC, "PATH": os.environ.get("PATH", "")}, check=True)
    assert json.loads(r.stdout) == ["rootless.engine"], r.stdout


@pytest.mark.parametrize("name", FACADE)
def test_facade_functions_are_documented_and_typed(name):
    fn = getattr(engine, name)
    assert pyinspect.isfunction(fn) and fn.__module__ == "rootless.engine", name
    doc = pyinspect.getdoc(fn) or ""
    assert len(doc) > 30, f"engine.{name} says too little about what it returns and raises"
    sig = pyinspect.signature(fn)
    assert sig.return_annotation is not pyinspect.Signature.empty, f"engine.{name} has no return type"
    for p in sig.parameters.values():
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            assert p.annotation is not pyinspect.Parameter.empty, f"engine.{name}({p.name}) has no type"


def test_lazy_names_of_the_create_path_still_resolve():
    assert engine.choose_runtime.__name__ == "choose_runtime"
    assert engine.ExecOptions(["true"]).cmd == ["true"]
    with pytest.raises(AttributeError):
        engine.no_such_thing  # noqa: B018
