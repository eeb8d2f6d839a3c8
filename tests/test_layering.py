"""The layering of DESIGN.md, checked on the import graph of src/rootless."""

import ast
import os

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "rootless")
pytestmark = pytest.mark.nosubuid


def imports_of(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for a in node.names:
                yield f"{node.module}.{a.name}"


def modules():
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".py"):
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, os.path.dirname(SRC))[:-3].replace(os.sep, ".")
                yield rel.replace(".__init__", ""), full


def test_only_cli_and_api_import_engine():
    for mod, path in modules():
        # the monitor is a process entry point like the CLI: the detached container's parent
        if mod.startswith(("rootless.cli", "rootless.commands", "rootless.api", "rootless.engine")):
            continue
        for imp in imports_of(path):
            assert not imp.startswith("rootless.engine"), f"{mod} imports the engine"


def test_runtime_never_imports_storage_network_cgroups():
    for mod, path in modules():
        if not mod.startswith("rootless.runtime"):
            continue
        for imp in imports_of(path):
            assert not imp.startswith(("rootless.storage", "rootless.network", "rootless.cgroups", "rootless.image")), (
                f"{mod} imports {imp}"
            )


def test_only_the_helper_imports_pyroute2_and_only_linux_uses_ctypes():
    for mod, path in modules():
        for imp in imports_of(path):
            if imp.startswith("pyroute2"):
                assert mod.startswith("rootless.network"), f"{mod} imports pyroute2"
            if imp == "ctypes" or imp.startswith("ctypes."):
                assert mod.startswith("rootless.linux"), f"{mod} imports ctypes"


def test_library_code_does_not_print():
    for mod, path in modules():
        if mod.startswith(("rootless.cli", "rootless.commands", "rootless.api", "rootless.__main__")):
            continue
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(f"{mod} calls print() at line {node.lineno}: raise or return instead")
