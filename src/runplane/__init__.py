"""runplane: run OpenAI Agents SDK programs on any execution backend.

from runplane import Runner              # backend from RUNPLANE_BACKEND (default "openai")
Runner = runplane.runner("durable")      # backend by name
runplane.install("durable")              # unchanged `agents.Runner` calls, process-wide
"""

from __future__ import annotations

from .errors import (
    BackendConflictError,
    BackendFactoryError,
    BrokenPluginWarning,
    PluginLoadError,
    RunplaneError,
    UnknownBackendError,
)
from .facade import DEFAULT_BACKEND, ENV_BACKEND, BackendRunner, Runner, runner
from .hookspecs import hookimpl
from .install import Installation, install, installed, sdk_runner, uninstall
from .observe import RunInfo
from .protocol import RunnerBackend
from .registry import BackendEntry, BrokenPlugin, Registry, default_registry
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
    "Installation",
    "PluginLoadError",
    "Registry",
    "RunInfo",
    "Runner",
    "RunnerBackend",
    "RunplaneError",
    "SyncDriver",
    "UnknownBackendError",
    "backends",
    "default_registry",
    "hookimpl",
    "install",
    "installed",
    "register_plugin",
    "runner",
    "sdk_runner",
    "uninstall",
]


def backends() -> dict[str, BackendEntry]:
    """Every installed backend by name (no backend is constructed)."""
    return default_registry().backends()


def register_plugin(plugin: object, *, name: str | None = None) -> str:
    """Register a plugin from code (an in-tree backend, a test double, an observer)."""
    return default_registry().register(plugin, name=name)
