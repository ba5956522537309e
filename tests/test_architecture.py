"""The four rooms and their walls, thin commands: what each may import, and no import circles.

Modules are found by walking the package, so a new module is checked without editing this
file. Imports are read from the source (``ast``), top level and function level alike.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bench

PACKAGE = Path(bench.__file__).parent
COMMANDS = [
    "bench.run",
    "bench.aggregate",
    "bench.report",
    "bench.sweep",
    "bench.speed",
    "bench.agents",
    "bench.serve",
]
ROOMS = ("core", "launch", "pipeline", "analysis")
# What each room may import from bench: core only itself; no room reaches into another's.
# A command may import any room: it wires them (bench.run hands the worker's execute to
# the launcher for isolate=false, bench.serve hands it the worker's export and measure).
MAY_IMPORT = {
    "core": {"core"},
    "launch": {"core", "launch"},
    "pipeline": {"core", "pipeline"},
    "analysis": {"core", "analysis"},
}


def modules(room: str) -> list[str]:
    """Every module of a room (sub-packages included)."""
    found = [f"bench.{room}"]
    for info in pkgutil.walk_packages([str(PACKAGE / room)], prefix=f"bench.{room}."):
        found.append(info.name)
    return found


def source(module: str) -> Path:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def bench_imports(module: str) -> set[str]:
    """The bench modules ``module`` imports, anywhere in its source."""
    tree = ast.parse(source(module).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _exists(candidate) else node.module)
    return {name for name in found if name.startswith("bench.") and _exists(name)}


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def every_module() -> list[str]:
    return [m for room in ROOMS for m in modules(room)] + COMMANDS + ["bench.worker"]


def test_every_module_lives_in_a_room_or_is_a_command():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert {f"bench.{name}" for name in top} == {*COMMANDS, "bench.worker"}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(ROOMS)


@pytest.mark.parametrize("room", ROOMS)
def test_a_room_imports_only_what_it_may(room):
    for module in modules(room):
        for imported in bench_imports(module):
            target = imported.split(".")[1]
            assert target in MAY_IMPORT[room], f"{module} imports {imported}"


#: A command parses, wires the rooms and exits: the work lives in a room. Longer than this
#: and a command is doing a room's work (the serve command once held 312 lines of it).
COMMAND_LINES, COMMAND_FUNCTION_LINES = 50, 15


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_is_thin(command):
    text = source(command).read_text()
    tree = ast.parse(text)
    assert len(text.splitlines()) <= COMMAND_LINES, f"{command}: {len(text.splitlines())} lines"
    assert not [n for n in tree.body if isinstance(n, ast.ClassDef)], f"{command} defines a class"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= COMMAND_FUNCTION_LINES, f"{command}.{node.name}: {length} lines"


def test_there_is_no_import_circle():
    graph = {module: bench_imports(module) for module in every_module()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            assert state.get(imported) != "open", " -> ".join([*path, module, imported])
            if imported not in state:
                visit(imported, [*path, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


def _loaded_after_import(names: list[str]) -> dict:
    code = (
        "import json, sys\n"
        f"for name in {names!r}: __import__(name)\n"
        "print(json.dumps({k: k in sys.modules for k in "
        "('tensorflow', 'tf_keras', 'pandas', 'matplotlib')}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_launcher_side_never_loads_tensorflow():
    loaded = _loaded_after_import(
        modules("core") + modules("launch") + ["bench.run", "bench.sweep"]
    )
    assert loaded["tensorflow"] is False and loaded["tf_keras"] is False
    assert loaded["pandas"] is False  # the launcher has no use for the analysis stack


def test_the_analysis_side_never_loads_tensorflow():
    loaded = _loaded_after_import(modules("analysis") + ["bench.aggregate", "bench.report"])
    assert loaded["tensorflow"] is False and loaded["tf_keras"] is False


def test_the_worker_side_does_load_tensorflow():
    """The check above can fail: importing the worker room does load TensorFlow."""
    loaded = _loaded_after_import(["bench.pipeline.execute"])
    assert loaded["tensorflow"] is True and loaded["tf_keras"] is True
