"""Enforced approval policies: which tool calls need approval, decided outside the tools.

    policy = ApprovalPolicy.from_toml("approvals.toml")
    agent = runplane.policy.apply(agent, policy)      # this agent graph
    runplane.policy.install(policy)                   # or every run runplane starts

The SDK's own `needs_approval` machinery does the pausing, so a run stops with the SDK's
`interruptions` on every backend, and `rule_for_call(call_id)` says which rule asked.
`rules` (what a policy is, how it decides) and `data` (TOML) import no SDK; `guard` (applying
one to agents) does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .process import PolicyInstallation, enforced, install, installed, uninstall
from .rules import DEFAULT_RULE, ApprovalPolicy, Condition, Decision, PolicyError, Rule

if TYPE_CHECKING:
    from .guard import RECORDED_CALLS, apply, is_applied, original_of, rule_for_call

__all__ = [
    "DEFAULT_RULE",
    "RECORDED_CALLS",
    "ApprovalPolicy",
    "Condition",
    "Decision",
    "PolicyError",
    "PolicyInstallation",
    "Rule",
    "apply",
    "enforced",
    "install",
    "installed",
    "is_applied",
    "original_of",
    "rule_for_call",
    "uninstall",
]

_LAZY = ("RECORDED_CALLS", "apply", "is_applied", "original_of", "rule_for_call")


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import guard as module

    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
