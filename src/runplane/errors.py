"""Errors the core raises. Each says what was wrong and what to do next."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = [
    "BackendConflictError",
    "BackendFactoryError",
    "BrokenPluginWarning",
    "PluginLoadError",
    "RunplaneError",
    "UnknownBackendError",
]


class RunplaneError(Exception):
    """Base class for every error runplane itself raises (never for errors of the run)."""


class UnknownBackendError(RunplaneError, LookupError):
    """A backend name that no installed plugin provides.

    `source` says where the name came from when the caller did not write it in code (the
    RUNPLANE_BACKEND variable); `broken` lists plugins that failed to load, any of which may be
    the one that would have provided it.
    """

    def __init__(
        self,
        name: str,
        installed: dict[str, str],
        *,
        source: str | None = None,
        broken: Sequence[PluginLoadError] = (),
    ) -> None:
        self.name = name
        self.installed = dict(installed)
        self.source = source
        self.broken = tuple(broken)
        parts = [f"Unknown runplane backend {name!r}" + (f" (from {source})." if source else ".")]
        close = _close_names(name, list(installed))
        if close:
            parts.append(
                f"Did you mean {' or '.join(repr(n) for n in close)}? Backend names are "
                "case-sensitive."
            )
        if installed:
            listing = ", ".join(f"{n} (from {d})" for n, d in sorted(installed.items()))
            parts.append(f"Installed backends: {listing}.")
        elif not self.broken:
            parts.append(
                "No backends are installed; `pip install runplane-openai` gives the direct one."
            )
        if self.broken:
            listing = "; ".join(
                f"{b.distribution} (entry point {b.entry_point!r}: {type(b.cause).__name__}: "
                f"{b.cause})"
                for b in self.broken
            )
            parts.append(
                f"These plugins failed to load and may provide it: {listing}. Fix or uninstall "
                "them (`runplane backends` lists them)."
            )
        parts.append(
            "A backend is installed by a distribution that declares it in the `runplane` "
            "entry-point group (see docs/writing-a-backend.md)."
        )
        super().__init__(" ".join(parts))


def _close_names(name: str, known: list[str]) -> list[str]:
    """Installed names a typo or a different case of `name` most likely meant."""
    folded = {n.casefold(): n for n in known}
    if name.casefold() in folded:
        return [folded[name.casefold()]]
    matches = difflib.get_close_matches(name.casefold(), list(folded), n=2, cutoff=0.75)
    return [folded[m] for m in matches]


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


class BrokenPluginWarning(RuntimeWarning):
    """A plugin failed to load; the others still work, and its backend raises when asked for."""


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
