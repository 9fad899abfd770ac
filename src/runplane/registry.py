"""Backends discovered as pluggy plugins from the `runplane` entry-point group.

Loading is loud but contained: a plugin that fails to import, misspells a hook or whose
`runplane_backends` returns garbage is reported at once (a `BrokenPluginWarning` naming its
distribution and the cause), listed as broken by `runplane backends`, and its `PluginLoadError` is
raised when its backend is asked for. The other plugins keep working: one bad distribution in an
environment must not take down every backend and the CLI with it. Two plugins claiming one backend
name still raise `BackendConflictError`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import (
    BackendConflictError,
    BackendFactoryError,
    BrokenPluginWarning,
    PluginLoadError,
    RunplaneError,
    UnknownBackendError,
)
from .protocol import RunnerBackend

__all__ = ["ENTRY_POINT_GROUP", "BackendEntry", "BrokenPlugin", "Registry", "default_registry"]

ENTRY_POINT_GROUP = "runplane"
IN_PROCESS = "<in-process>"


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend name comes from (for listings and error messages)."""

    name: str
    distribution: str
    version: str
    plugin: str
    factory: Callable[[], RunnerBackend]
    registered_as: str = ""


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that failed to load: listed, warned about, and raised when its backend is asked."""

    name: str  # its entry-point name, by convention the name of the backend it provides
    distribution: str
    version: str
    error: PluginLoadError


@dataclass(frozen=True)
class _Origin:
    distribution: str
    version: str
    plugin: str


class Registry:
    """A pluggy `PluginManager` for the `runplane` hooks, plus the backends its plugins provide."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._origins: dict[str, _Origin] = {}
        self._entry_points_loaded = False
        self._backends: dict[str, BackendEntry] | None = None
        self._broken: dict[str, BrokenPlugin] = {}  # plugin registration name -> why
        # name -> (plugin registration, instance); unregistering a plugin drops its instances,
        # so replacing a plugin never leaves a stale backend behind.
        self._instances: dict[str, tuple[str, RunnerBackend]] = {}
        self._lock = threading.RLock()

    @property
    def hook(self) -> Any:
        """The hook relay: `registry.hook.runplane_run_started(run=...)` and friends."""
        self.load()
        return self.plugin_manager.hook

    def load(self) -> None:
        """Import every entry point of the group once; one that fails is recorded and warned of."""
        with self._lock:
            if self._entry_points_loaded:
                return
            seen: set[tuple[str, str]] = set()
            for ep in metadata.entry_points(group=self.group):
                dist = ep.dist
                dist_name = dist.metadata["Name"] if dist is not None else "<unknown distribution>"
                version = dist.version if dist is not None else ""
                key = (dist_name, ep.name)
                if key in seen:  # the same distribution found twice on sys.path
                    continue
                seen.add(key)
                plugin_name = f"{dist_name}:{ep.name}"
                origin = _Origin(dist_name, version, ep.name)
                try:
                    plugin = ep.load()
                except Exception as exc:
                    error = PluginLoadError(
                        distribution=dist_name, entry_point=f"{ep.name} = {ep.value}", cause=exc
                    )
                    error.__cause__ = exc
                    self._mark_broken(plugin_name, origin, error)
                    continue
                try:
                    self._register(plugin, plugin_name, origin)
                except PluginLoadError as error:
                    self._mark_broken(plugin_name, origin, error)
            self._entry_points_loaded = True

    def _mark_broken(self, plugin_name: str, origin: _Origin, error: PluginLoadError) -> None:
        self._broken[plugin_name] = BrokenPlugin(
            origin.plugin, origin.distribution, origin.version, error
        )
        # A warning rather than a log record: it is shown without any logging configured, once
        # per message, and `-W error::runplane.BrokenPluginWarning` turns it into a failure in CI.
        warnings.warn(
            f"{error} Other runplane backends still work; backend {origin.plugin!r} raises this "
            "error when asked for.",
            BrokenPluginWarning,
            stacklevel=2,
        )

    def broken(self) -> list[BrokenPlugin]:
        """Every plugin that failed to load, with its error (listed by `runplane backends`)."""
        with self._lock:
            self.backends()
            return list(self._broken.values())

    def register(self, plugin: object, *, name: str | None = None) -> str:
        """Register a plugin from code, as if a distribution had declared it.

        For applications that keep a backend in-tree, and for tests. Returns the plugin's name.
        """
        with self._lock:
            self.load()
            plugin_name = name or f"{IN_PROCESS}:{getattr(plugin, '__name__', repr(plugin))}"
            self._register(plugin, plugin_name, _Origin(IN_PROCESS, "", plugin_name))
            return plugin_name

    def unregister(self, name: str) -> None:
        """Remove a plugin registered with `register` (and forget its backend instances)."""
        with self._lock:
            plugin = self.plugin_manager.unregister(name=name)
            if plugin is None:
                raise KeyError(f"no runplane plugin named {name!r} is registered")
            self._origins.pop(name, None)
            self._broken.pop(name, None)
            for backend_name, (owner, _) in list(self._instances.items()):
                if owner == name:
                    del self._instances[backend_name]
            self._invalidate()

    def _register(self, plugin: object, plugin_name: str, origin: _Origin) -> None:
        try:
            self.plugin_manager.register(plugin, name=plugin_name)
        except Exception as exc:
            raise PluginLoadError(
                distribution=origin.distribution, entry_point=origin.plugin, cause=exc
            ) from exc
        try:
            # A `runplane_*` function that matches no hook spec is almost always a typo
            # (`runplane_backend`); pluggy would otherwise ignore it without a word.
            self.plugin_manager.check_pending()
        except pluggy.PluginValidationError as exc:
            self.plugin_manager.unregister(plugin)
            raise PluginLoadError(
                distribution=origin.distribution, entry_point=origin.plugin, cause=exc
            ) from exc
        self._origins[plugin_name] = origin
        self._invalidate()

    def _invalidate(self) -> None:
        self._backends = None

    def backends(self) -> dict[str, BackendEntry]:
        """Every backend name the registered plugins provide, without constructing any."""
        with self._lock:
            self.load()
            if self._backends is None:
                self._backends = self._collect()
            return dict(self._backends)

    def _collect(self) -> dict[str, BackendEntry]:
        found: dict[str, BackendEntry] = {}
        pm = self.plugin_manager
        for impl in pm.hook.runplane_backends.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            origin = self._origins.get(plugin_name, _Origin(IN_PROCESS, "", plugin_name))
            try:
                provided = _provided(impl.function, origin)
            except PluginLoadError as error:
                if origin.distribution == IN_PROCESS:
                    raise  # registered from code: the caller's own bug, reported to the caller
                self._mark_broken(plugin_name, origin, error)
                continue
            for backend_name, factory in provided.items():
                if backend_name in found:
                    other = found[backend_name]
                    raise BackendConflictError(
                        backend_name,
                        f"{other.distribution} (plugin {other.plugin})",
                        f"{origin.distribution} (plugin {origin.plugin})",
                    )
                found[backend_name] = BackendEntry(
                    backend_name,
                    origin.distribution,
                    origin.version,
                    origin.plugin,
                    factory,
                    plugin_name,
                )
        return found

    def entry(self, name: str, *, source: str | None = None) -> BackendEntry:
        """The entry for `name`; an unknown name lists what is installed and what is broken.

        A broken plugin whose entry-point name is `name` raises its own `PluginLoadError`.
        `source` says where the name came from, for the error message.
        """
        backends = self.backends()
        try:
            return backends[name]
        except KeyError:
            pass
        with self._lock:
            broken = list(self._broken.values())
        for plugin in broken:
            if plugin.name == name:
                raise plugin.error
        installed = {n: e.distribution for n, e in backends.items()}
        raise UnknownBackendError(name, installed, source=source, broken=[b.error for b in broken])

    def get(self, name: str, *, source: str | None = None) -> RunnerBackend:
        """The backend instance for `name`, created on first use and kept for the process."""
        with self._lock:
            entry = self.entry(name, source=source)
            cached = self._instances.get(name)
            if cached is not None and cached[0] == entry.registered_as:
                return cached[1]
            try:
                instance = entry.factory()
            except RunplaneError:
                raise  # already says what is wrong and what to do (a SettingsError, say)
            except Exception as exc:
                raise BackendFactoryError(
                    name, entry.distribution, f"its factory raised {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(instance, RunnerBackend):
                raise BackendFactoryError(
                    name,
                    entry.distribution,
                    f"its factory returned {type(instance).__name__}, which lacks run, run_sync "
                    "or run_streamed (see runplane.RunnerBackend)",
                )
            self._instances[name] = (entry.registered_as, instance)
            return instance


def _provided(
    hook: Callable[[], object], origin: _Origin
) -> Mapping[str, Callable[[], RunnerBackend]]:
    """What one plugin's `runplane_backends()` returns, checked; PluginLoadError if garbage."""
    try:
        provided = hook()
    except Exception as exc:
        raise PluginLoadError(
            distribution=origin.distribution, entry_point=origin.plugin, cause=exc
        ) from exc
    if not isinstance(provided, Mapping):
        raise PluginLoadError(
            distribution=origin.distribution,
            entry_point=origin.plugin,
            cause=TypeError(
                "runplane_backends() must return a mapping of backend name to factory, "
                f"got {type(provided).__name__}"
            ),
        )
    for backend_name, factory in provided.items():
        if not isinstance(backend_name, str) or not backend_name or not callable(factory):
            raise PluginLoadError(
                distribution=origin.distribution,
                entry_point=origin.plugin,
                cause=TypeError(
                    "runplane_backends() entries must be non-empty str -> zero-argument "
                    f"callable, got {backend_name!r} -> {factory!r}"
                ),
            )
    return provided


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry every selection path uses."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default
