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

# Plain data and its forms, the engine contract, the engine on a database, what the CLI reads.
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
}
ENGINE = {"engine", "local"}  # and store.*
RUNTIME = {
    "active",
    "identity",
    "backend",
    "intercept",
    "runner",
    "sdk_internals",
    "tool_outputs",
    "tool_usage",
}
FRONT = {"cli", "plugin", "demo"}  # and demo.*; may import everything

# What each layer may import from this package (besides itself).
ALLOWED = {
    "data": DATA,
    "engine": DATA | ENGINE | {"store"},
    "runtime": DATA | ENGINE | RUNTIME | {"store"},
}


def _layer(module: str) -> str:
    top = module.split(".")[0]
    if top in DATA:
        return "data"
    if top in ENGINE or top == "store":
        return "engine"
    if top in RUNTIME:
        return "runtime"
    return "front"


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
    tops = {m.split(".")[0] for m in _modules()}
    assert tops <= DATA | ENGINE | RUNTIME | FRONT | {"store"}, tops - (DATA | ENGINE | RUNTIME)


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _layer(m) != "front"))
def test_a_module_imports_only_its_own_layer_and_those_below(module: str) -> None:
    allowed = ALLOWED[_layer(module)]
    wrong = sorted(
        i for i in _imports(module, _modules()[module]) if i.split(".")[0] not in allowed
    )
    assert not wrong, f"{module} ({_layer(module)}) imports {wrong}: see docs/architecture.md"


def test_the_engine_layer_runs_without_the_sdk(tmp_path: Path) -> None:
    """A server or CLI reads runs through the engine without importing the Agents SDK."""
    code = (
        "import sys\n"
        "import runplane_durable.local, runplane_durable.states, runplane_durable.attempts\n"
        "import runplane_durable.names, runplane_durable.store.database\n"
        "print(sorted(m for m in sys.modules if m == 'agents' or m.startswith('agents.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "module", sorted(m for m in _modules() if _layer(m) in ("runtime", "front") and m != "plugin")
)
def test_the_runtime_and_the_cli_never_name_the_engine_they_use(module: str) -> None:
    """They get one from `engine.open_engine` (or are given one), so a remote engine can stand
    in without touching them."""
    assert "local" not in _imports(module, _modules()[module])
