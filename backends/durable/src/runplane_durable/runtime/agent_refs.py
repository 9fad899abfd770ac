"""Agent references: an agent named as "pkg.module:attr", so another process can rebuild it.

A run stores its agent's reference when one can be found reliably, and a worker that imported
the same module finds the agent by it. The rule (docs: the worker section of docs/server.md):
the reference of an agent is `module:attr` for a module of the program's own code, imported
under its own name (not `__main__`, not the standard library, not an installed distribution's
site-packages), whose top-level `attr` is that very agent object. A module-level agent of an
importable module has one; an agent built in a function, or defined in the script run as
`python app.py`, has none, and a worker then knows the run's agent by its name. When several
modules hold the agent (a package re-exporting it), the longest module name wins, then the
first attribute in alphabetical order: the defining submodule rather than the re-export.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import threading
import types
import weakref
from collections.abc import Iterator
from typing import Any

from agents import Agent

from runplane.policy import original_of

from ..errors import AgentRefError

__all__ = ["load_agents", "parse_ref", "ref_of", "refs_of", "resolve"]

_LIBRARY_ROOTS = tuple(
    os.path.join(root, "")
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    for root in {p, os.path.realpath(p)}
)
_INSTALLED = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_library: dict[str, bool] = {}  # module name -> not the program's own code (never scanned)
_cache: dict[int, tuple[weakref.ref[Any], str | None]] = {}
_lock = threading.Lock()


def parse_ref(ref: str) -> tuple[str, str | None]:
    """`("pkg.module", "attr")` for "pkg.module:attr", `("pkg.module", None)` for a module."""
    module, sep, attr = ref.partition(":")
    parts = [*module.split("."), *(attr.split(".") if sep else [])]
    if not module or (sep and not attr) or not all(p.isidentifier() for p in parts):
        raise AgentRefError(
            ref=ref,
            problem="not an import reference; write it as 'package.module:attribute' (or "
            "'package.module' for every agent at the top of that module)",
        )
    return module, attr if sep else None


def _import(ref: str, module: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            where = ", ".join(p or "." for p in sys.path[:4])
            problem = (
                f"no module named {exc.name!r} (looked in {where}, ...); run from the "
                "directory that holds it, or add that directory to PYTHONPATH"
            )
        else:
            problem = f"module {module!r} does not import: {type(exc).__name__}: {exc}"
        raise AgentRefError(ref=ref, problem=problem) from exc
    except Exception as exc:
        raise AgentRefError(
            ref=ref, problem=f"module {module!r} does not import: {type(exc).__name__}: {exc}"
        ) from exc


def _attribute(ref: str, module: types.ModuleType, attr: str) -> Any:
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise AgentRefError(
                ref=ref, problem=f"module {module.__name__!r} has no attribute {attr!r}"
            )
        value = getattr(value, part)
    return value


def resolve(ref: str) -> Agent[Any]:
    """The agent "pkg.module:attr" names, importing the module; AgentRefError if it names none."""
    module_name, attr = parse_ref(ref)
    if attr is None:
        raise AgentRefError(
            ref=ref, problem="names a module, not one agent; write it as 'package.module:attr'"
        )
    agent = _attribute(ref, _import(ref, module_name), attr)
    if not isinstance(agent, Agent):
        raise AgentRefError(
            ref=ref, problem=f"{attr!r} is a {type(agent).__qualname__}, not an agents.Agent"
        )
    return agent


def load_agents(spec: str) -> dict[str, Agent[Any]]:
    """The agents a worker is given by `spec`: "pkg.module:attr" is that one agent,
    "pkg.module" every `Agent` at the module's top level; each under its reference."""
    module_name, attr = parse_ref(spec)
    if attr is not None:
        return {spec: resolve(spec)}
    module = _import(spec, module_name)
    found = {
        f"{module_name}:{name}": value
        for name, value in sorted(vars(module).items())
        if isinstance(value, Agent)
    }
    if not found:
        raise AgentRefError(
            ref=spec,
            problem=f"module {module_name!r} defines no Agent at its top level; name one with "
            f"'{module_name}:ATTR', or give the module that defines the agents",
        )
    return found


def _is_library(name: str, module: Any) -> bool:
    """A module that is not the program's own code, or not importable under `name`."""
    if not isinstance(module, types.ModuleType) or name == "__main__":
        return True
    if getattr(getattr(module, "__spec__", None), "name", None) != name:
        return True  # run as a script, or registered under another name: not importable so
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return True  # built in, or a namespace package (which holds no agent of its own)
    return file.startswith(_LIBRARY_ROOTS) or any(part in file for part in _INSTALLED)


def _program_modules() -> Iterator[tuple[str, types.ModuleType]]:
    for name, module in list(sys.modules.items()):
        library = _library.get(name)
        if library is None:
            library = _library[name] = _is_library(name, module)
        if not library:
            yield name, module


def refs_of(agent: Agent[Any], *, program_only: bool = True) -> list[str]:
    """Every `module:attr` of an imported module whose top-level `attr` is `agent`, preferred
    first (see the module's docstring). `program_only=False` looks in every imported module."""
    if program_only:
        modules = list(_program_modules())
    else:
        modules = [
            (n, m)
            for n, m in list(sys.modules.items())
            if isinstance(m, types.ModuleType) and n != "__main__"
        ]
    found = [
        (name, attr)
        for name, module in modules
        for attr, value in list(vars(module).items())
        if value is agent
    ]
    found.sort(key=lambda ref: (-len(ref[0]), ref[0], ref[1]))
    return [f"{name}:{attr}" for name, attr in found]


def ref_of(agent: Agent[Any]) -> str | None:
    """The reference a run of `agent` is stored with, or None when it has none; looked up once
    per agent object. A clone an approval policy made (`runplane.policy`) is named by the
    agent it was made from, which is the module's attribute; a worker applies its policy again."""
    agent = original_of(agent)
    key = id(agent)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0]() is agent:
            return cached[1]
    refs = refs_of(agent)
    ref = refs[0] if refs else None
    try:
        alive = weakref.ref(agent, lambda _, key=key: _cache.pop(key, None))  # type: ignore[misc]
    except TypeError:  # an object that takes no weak reference: not cached
        return ref
    with _lock:
        _cache[key] = (alive, ref)
    return ref
