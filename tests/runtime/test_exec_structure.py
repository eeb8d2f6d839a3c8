"""exec beside create/start (issue 12): one message vocabulary, no private cross-module calls.

The behaviour of exec is covered by tests/commands/test_lifecycle.py, tests/test_containers_exec.py
and tests/commands/test_run_tty.py; these check the structure that keeps it in one place.
"""

import ast
import os

import pytest

from rootless.runtime import sync
from test_layering import modules as _modules

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src", "rootless")
pytestmark = pytest.mark.nosubuid


def _private_uses_of_runtime(path):
    """``alias._name`` where alias names a rootless.runtime module, and ``from rootless.runtime.x import _y``."""
    tree = ast.parse(open(path).read())
    aliases = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rootless.runtime"):
            for a in node.names:
                if a.name.startswith("_"):
                    found.append(f"{node.module}.{a.name}")
                aliases.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rootless.runtime") and a.asname:
                    aliases.add(a.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_nothing_outside_the_runtime_calls_its_private_functions():
    for mod, path in _modules():
        if mod.startswith("rootless.runtime"):
            continue
        assert _private_uses_of_runtime(path) == [], f"{mod} reaches into the runtime"


def test_exec_lives_in_the_runtime_not_in_the_engine():
    text = open(os.path.join(SRC, "engine", "containers.py")).read()
    assert "SimpleNamespace" not in text
    assert "setns" not in text and "os.fork" not in text and "execve" not in text


@pytest.mark.parametrize("msg", [sync.ExecPid(1234), sync.PtyMaster(), sync.Error("exec: \"x\": not found", "hint", 127)])
def test_exec_messages_are_the_runtime_vocabulary(msg):
    a, b = sync.socketpair()
    try:
        if isinstance(msg, sync.PtyMaster):
            r, w = os.pipe()
            sync.send(a, msg, r)
            os.close(r)
            got, fd = sync.recv_with_fd(b, timeout=5)
            assert fd is not None
            os.close(fd)
            os.close(w)
        else:
            sync.send(a, msg)
            got = sync.recv(b, timeout=5)
        assert type(got) is type(msg) and sync.encode(got) == sync.encode(msg)
    finally:
        a.close()
        b.close()


def test_a_malformed_message_is_an_error_not_a_crash():
    from rootless.errors import RuntimeSetupError

    with pytest.raises(RuntimeSetupError):
        sync.decode(b'{"type": "ExecPid", "pid": 1, "__class__": "x"}' + b"\xff")
    with pytest.raises(RuntimeSetupError):
        sync.decode(b'{"type": "Pickle"}')
