"""A process-wide policy: `runplane.policy.install(policy)` guards every run the core starts.

runplane's runner classes (`runplane.runner(name)`, `from runplane import Runner`, a backend's
own `Runner`, and `agents.Runner` under `runplane.install`) apply the installed policy to each
run's starting agent before the backend sees it, so it holds on every backend. A backend that
starts runs without them (a durable worker resuming a queued run) calls `enforced(agent)`.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, TypeVar

from .rules import ApprovalPolicy

__all__ = ["PolicyInstallation", "enforced", "install", "installed", "uninstall"]

T = TypeVar("T")

_lock = threading.Lock()
_policy: ApprovalPolicy | None = None


class PolicyInstallation:
    """Returned by `install`; as a context manager, puts the previous policy back on exit."""

    def __init__(self, policy: ApprovalPolicy, previous: ApprovalPolicy | None) -> None:
        self.policy = policy
        self._previous = previous

    def __enter__(self) -> PolicyInstallation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _policy
        with _lock:
            _policy = self._previous


def install(policy: ApprovalPolicy) -> PolicyInstallation:
    """Apply `policy` to every run started through runplane in this process from now on."""
    global _policy
    if not isinstance(policy, ApprovalPolicy):
        raise TypeError(
            f"install takes an ApprovalPolicy (ApprovalPolicy.from_toml(path) loads one), not a "
            f"{type(policy).__name__}"
        )
    with _lock:
        previous, _policy = _policy, policy
    return PolicyInstallation(policy, previous)


def uninstall() -> None:
    """Remove the process-wide policy (a no-op when none is installed)."""
    global _policy
    with _lock:
        _policy = None


def installed() -> ApprovalPolicy | None:
    """The process-wide policy, or None."""
    return _policy


def enforced(agent: T) -> T:
    """`agent` under the process-wide policy (the same clone every time), or `agent` itself when
    none is installed or it is not an `agents.Agent` (the SDK reports that its own way)."""
    policy = _policy
    if policy is None:
        return agent
    from agents import Agent

    if not isinstance(agent, Agent):
        return agent
    from .guard import apply

    applied: Any = apply(agent, policy)
    return applied  # type: ignore[no-any-return]
