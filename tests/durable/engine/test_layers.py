"""The durable backend's layers import one way (docs/architecture.md, "Layers").

Read from the source, not by importing it: a module that imports another only inside a function
still depends on it, and a rule that only holds at import time would let the layers grow into
each other one lazy import at a time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "backends" / "durable" / "src" / "runplane_durable"

# The plain-data modules, at the package's top: everyone imports them.
DATA = {
    "records",
    "errors",
    "lazy_errors",
    "names",
    "owner",
    "attempts",
    "states",
    "events",
    "codec",
    "serde",  # the codec: the SDK's model types are imported only to (de)serialize them
    "writes",  # a run session's writes as records, with their JSON forms
    "forks",  # what a fork of a run shares, from its events and journal
}
# Every other module's layer is its subpackage; the engine contract and the front's entry point
# stay at the top.
SUBPACKAGES = {
    "local": "engine",
    "runtime": "runtime",
    "server": "server",
    "worker": "worker",
    "cli": "front",
    "demo": "front",
}
# `session` is the one RunSession both engines use; `remote` the engine over HTTP.
TOP = {
    "engine": "engine",
    "session": "engine",
    "remote_engine": "engine",
    "http1": "engine",  # the remote engine's HTTP/1.1 transport
    "plugin": "front",
}

# What each layer may import from this package.
ALLOWED = {
    "data": {"data"},
    "engine": {"data", "engine"},
    "runtime": {"data", "engine", "runtime"},
    # The server serves an engine and never runs an agent: no runtime, no concrete engine.
    "server": {"data", "engine", "server"},
    # Workers run agents with the runtime, on an engine they are given.
    "worker": {"data", "engine", "runtime", "worker"},
}


def _layer(module: str) -> str:
    top = module.split(".")[0]
    if top in DATA:
        return "data"
    if top in SUBPACKAGES:
        return SUBPACKAGES[top]
    return TOP.get(top, "unplaced")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """The package's modules `module` imports, anywhere in its source (TYPE_CHECKING too)."""
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
                names = (
                    [target]
                    if node.module
                    else [f"{target}.{a.name}".strip(".") for a in node.names]
                )
            elif node.module and node.module.startswith("runplane_durable."):
                names = [node.module.removeprefix("runplane_durable.")]
            else:
                continue
            found.update(n for n in names if n)
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix("runplane_durable.")
                for a in node.names
                if a.name.startswith("runplane_durable.")
            )
    return {n for n in found if n.split(".")[0] in _modules() or n in _modules()}


def test_every_module_belongs_to_a_layer() -> None:
    """A new module goes in a layer's subpackage, or is named here (docs/architecture.md)."""
    tops = {m.split(".")[0] for m in _modules()}
    assert tops <= DATA | set(SUBPACKAGES) | set(TOP), tops - DATA - set(SUBPACKAGES) - set(TOP)


@pytest.mark.parametrize("package", sorted(p for p in SUBPACKAGES if p != "demo"))
def test_a_layer_package_holds_only_its_docstring(package: str) -> None:
    """Importing one module of a layer then imports nothing else of it: `runplane runs list`
    reaches `local.database` without the rest, and no command that runs no agent imports the SDK."""
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text())
    assert ast.get_docstring(tree), f"{package}/__init__.py has no docstring"
    assert len(tree.body) == 1, f"{package}/__init__.py must hold only its docstring"


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _layer(m) in ALLOWED))
def test_a_module_imports_only_its_own_layer_and_those_below(module: str) -> None:
    allowed = ALLOWED[_layer(module)]
    wrong = sorted(i for i in _imports(module, _modules()[module]) if _layer(i) not in allowed)
    assert not wrong, f"{module} ({_layer(module)}) imports {wrong}: see docs/architecture.md"


def test_the_engine_layer_runs_without_the_sdk(tmp_path: Path) -> None:
    """A server or CLI reads runs through the engine without importing the Agents SDK."""
    code = (
        "import sys\n"
        "import runplane_durable.local.engine, runplane_durable.states, runplane_durable.attempts\n"
        "import runplane_durable.names, runplane_durable.local.database, runplane_durable.engine\n"
        "print(sorted(m for m in sys.modules if m == 'agents' or m.startswith('agents.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "module",
    sorted(m for m in _modules() if _layer(m) in ("runtime", "worker", "front") and m != "plugin"),
)
def test_the_runtime_and_the_cli_never_name_the_engine_they_use(module: str) -> None:
    """They get one from `engine.open_engine` (or are given one), so a remote engine can stand
    in without touching them. The runtime imports nothing of `local/`; the front only the local
    database's settings and location (`local.settings`, `local.database`: where the default
    database is), never `LocalEngine`."""
    found = _imports(module, _modules()[module])
    if _layer(module) in ("runtime", "worker"):
        assert not {i for i in found if i.split(".")[0] == "local"}, found
    assert not found & {"local", "local.engine"}, found
