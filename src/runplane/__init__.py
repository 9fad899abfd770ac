"""runplane: run OpenAI Agents SDK programs on any execution backend.

from runplane import Runner              # backend from RUNPLANE_BACKEND (default "openai")
Runner = runplane.runner("durable")      # backend by name
runplane.install("durable")              # unchanged `agents.Runner` calls, process-wide

Names that need the Agents SDK (the runner classes, `install`, `SyncDriver`, the backend base
class `RunnerBackendBase` and its `RunOptions`) are imported on first use, so that importing
runplane, or a plugin, or running a `runplane` command that runs no agent, does not pay for
importing the SDK (about 1.4 s here; see bench/startup.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .durability import (
    DurableCapabilities,
    RunHistory,
    RunStep,
    SupportsDurability,
    durability_of,
)
from .errors import (
    BackendConflictError,
    BackendFactoryError,
    BrokenPluginWarning,
    PluginLoadError,
    RunplaneError,
    UnknownBackendError,
)
from .hookspecs import hookimpl
from .observe import RunInfo
from .protocol import RunnerBackend
from .registry import BackendEntry, BrokenPlugin, Registry, default_registry

if TYPE_CHECKING:
    from .base import RunnerBackendBase
    from .facade import DEFAULT_BACKEND, ENV_BACKEND, BackendRunner, Runner, runner
    from .installation import Installation, install, installed, sdk_runner, uninstall
    from .options import RunInput, RunOptions
    from .sync import SyncDriver

__all__ = [
    "DEFAULT_BACKEND",
    "ENV_BACKEND",
    "BackendConflictError",
    "BackendEntry",
    "BackendFactoryError",
    "BackendRunner",
    "BrokenPlugin",
    "BrokenPluginWarning",
    "DurableCapabilities",
    "Installation",
    "PluginLoadError",
    "Registry",
    "RunHistory",
    "RunInfo",
    "RunInput",
    "RunOptions",
    "RunStep",
    "Runner",
    "RunnerBackend",
    "RunnerBackendBase",
    "RunplaneError",
    "SupportsDurability",
    "SyncDriver",
    "UnknownBackendError",
    "backends",
    "default_registry",
    "durability_of",
    "hookimpl",
    "install",
    "installed",
    "register_plugin",
    "runner",
    "sdk_runner",
    "uninstall",
]

# Public name -> the module that defines it (each imports the SDK).
_LAZY = {
    "DEFAULT_BACKEND": "facade",
    "ENV_BACKEND": "facade",
    "BackendRunner": "facade",
    "Runner": "facade",
    "runner": "facade",
    "Installation": "installation",
    "install": "installation",
    "installed": "installation",
    "sdk_runner": "installation",
    "uninstall": "installation",
    "SyncDriver": "sync",
    "RunnerBackendBase": "base",
    "RunInput": "options",
    "RunOptions": "options",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def backends() -> dict[str, BackendEntry]:
    """Every installed backend by name (no backend is constructed)."""
    return default_registry().backends()


def register_plugin(plugin: object, *, name: str | None = None) -> str:
    """Register a plugin from code (an in-tree backend, a test double, an observer)."""
    return default_registry().register(plugin, name=name)
