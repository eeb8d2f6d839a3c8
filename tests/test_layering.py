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


# --- commands are thin clients of the engine facade (issue 12 items 1 and 4) ---------------------------

ENGINE_DIR = os.path.join(SRC, "engine")
# What a command may import from under rootless.engine besides the facade (rootless.engine itself):
# the spec types, and the facades of images, volumes, networks and system beside the containers' one.
ENGINE_FOR_FACES = ("spec", "images", "volumes", "networks", "system", "events")
# Below the engine: what only the engine (and the runtime it drives) reaches.
BELOW_ENGINE = ("rootless.state", "rootless.runtime", "rootless.storage", "rootless.network", "rootless.cgroups")
# Commands another part of issue 12 is rewriting (the create/run path, start's attach code, the
# image/volume/network/system commands): to be taken off this list when those parts are merged.
PENDING = {"create", "run", "start", "attach", "helper"}
# `rootless runtime` is an OCI runtime's CLI (as crun's): it drives runtime/ itself, no engine.
PENDING.add("runtime")
PENDING_IMPORTS: set = set()


def engine_submodule(imp):
    """``X`` when ``imp`` names the module rootless.engine.X (or something in it), else None: a name
    the facade exports (``from rootless.engine import stop``) is not a submodule."""
    parts = imp.split(".")
    if parts[:2] != ["rootless", "engine"] or len(parts) < 3:
        return None
    name = parts[2]
    if os.path.exists(os.path.join(ENGINE_DIR, name + ".py")) or os.path.isdir(os.path.join(ENGINE_DIR, name)):
        return name
    return None


def command_modules():
    for mod, path in modules():
        if mod.startswith("rootless.commands.") and mod != "rootless.commands.__init__":
            yield mod, path


def test_commands_reach_the_engine_only_through_its_facade():
    checked = 0
    for mod, path in command_modules():
        if mod.rsplit(".", 1)[1] in PENDING:
            continue
        checked += 1
        for imp in imports_of(path):
            if (mod, imp) in PENDING_IMPORTS:
                continue
            sub = engine_submodule(imp)
            assert sub is None or sub in ENGINE_FOR_FACES, (
                f"{mod} imports {imp}: call the facade (rootless.engine) instead")
            assert not imp.startswith(BELOW_ENGINE), f"{mod} imports {imp}: that is the engine's to use"
            assert not imp.startswith("rootless.image"), f"{mod} imports {imp}: use the engine's facades"
    assert checked >= 20  # stop, kill, rm, ps, logs, exec, cp, ...


def test_no_command_imports_another_command():
    for mod, path in command_modules():
        for imp in imports_of(path):
            if (mod, imp) in PENDING_IMPORTS or mod.rsplit(".", 1)[1] in PENDING:
                continue
            if imp == "rootless.commands" or not imp.startswith("rootless.commands."):
                continue
            other = imp.split(".")[2]
            assert other == mod.rsplit(".", 1)[1], f"{mod} imports {imp}: move what they share into cli/ or the engine"


def test_nothing_below_the_faces_imports_a_face():
    faces = ("rootless.cli", "rootless.commands", "rootless.api")
    for mod, path in modules():
        # __main__ and the warm server (which forks a child per command and runs cli.main in it)
        # are the CLI's process front ends, above the faces
        if mod.startswith(faces) or mod in ("rootless.__main__", "rootless.warm"):
            continue
        for imp in imports_of(path):
            assert not imp.startswith(faces), f"{mod} imports {imp}: a layer below the faces must not know them"


def test_engine_submodule_is_told_from_a_facade_name():
    assert engine_submodule("rootless.engine.containers") == "containers"
    assert engine_submodule("rootless.engine.containers.stop") == "containers"
    assert engine_submodule("rootless.engine.stop") is None
    assert engine_submodule("rootless.engine") is None
    assert engine_submodule("rootless.enginex.y") is None


def test_no_facade_name_is_an_engine_submodule():
    """``import rootless.engine.X`` sets the package's attribute X to the module: a facade function
    named like a submodule would be replaced by it (and ``from rootless.engine import X`` would get
    either, depending on what was imported before)."""
    tree = ast.parse(open(os.path.join(ENGINE_DIR, "__init__.py")).read())
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    subs = {f[:-3] for f in os.listdir(ENGINE_DIR) if f.endswith(".py")} | {
        d for d in os.listdir(ENGINE_DIR) if os.path.isdir(os.path.join(ENGINE_DIR, d, "")) and d != "__pycache__"}
    assert "stop" in names and "containers" in subs
    assert not names & subs, f"facade names that are also submodules of rootless.engine: {sorted(names & subs)}"
