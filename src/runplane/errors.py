"""Errors the core raises. Each says what was wrong and what to do next."""

from __future__ import annotations

__all__ = [
    "BackendConflictError",
    "BackendFactoryError",
    "PluginLoadError",
    "RunplaneError",
    "UnknownBackendError",
]


class RunplaneError(Exception):
    """Base class for every error runplane itself raises (never for errors of the run)."""


class UnknownBackendError(RunplaneError, LookupError):
    """A backend name that no installed plugin provides."""

    def __init__(self, name: str, installed: dict[str, str]) -> None:
        self.name = name
        self.installed = dict(installed)
        if installed:
            listing = ", ".join(f"{n} (from {d})" for n, d in sorted(installed.items()))
            hint = f"Installed backends: {listing}."
        else:
            hint = "No backends are installed; `pip install runplane-openai` gives the direct one."
        super().__init__(
            f"Unknown runplane backend {name!r}. {hint} "
            "A backend is installed by a distribution that declares it in the `runplane` "
            "entry-point group (see docs/writing-a-backend.md)."
        )


class PluginLoadError(RunplaneError, ImportError):
    """An entry point in the `runplane` group that could not be imported or registered."""

    def __init__(self, *, distribution: str, entry_point: str, cause: BaseException) -> None:
        self.distribution = distribution
        self.entry_point = entry_point
        self.cause = cause
        super().__init__(
            f"runplane plugin {entry_point!r} from distribution {distribution!r} failed to load: "
            f"{type(cause).__name__}: {cause}. Fix or uninstall that distribution "
            f"(`pip uninstall {distribution}`)."
        )


class BackendConflictError(RunplaneError):
    """Two plugins that claim the same backend name."""

    def __init__(self, name: str, first: str, second: str) -> None:
        self.name = name
        self.claimants = (first, second)
        super().__init__(
            f"Backend name {name!r} is claimed by both {first} and {second}. "
            "Uninstall one of them, or ask one author to rename their backend."
        )


class BackendFactoryError(RunplaneError):
    """A backend factory that raised, or returned something that is not a RunnerBackend."""

    def __init__(self, name: str, distribution: str, problem: str) -> None:
        self.name = name
        self.distribution = distribution
        super().__init__(f"Backend {name!r} from {distribution!r} could not be created: {problem}")
