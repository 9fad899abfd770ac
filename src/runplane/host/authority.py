"""A host's authority: the enforced approval policy, and its text for the model's instructions."""

from __future__ import annotations

import os
from typing import Any

from ..policy import ApprovalPolicy
from ..policy.rules import Condition, Rule
from .options import HostSetupError

__all__ = ["authority_text", "load_authority"]

_OPS = {
    "equals": "is",
    "not_equals": "is not",
    "one_of": "is one of",
    "glob": "matches",
    "gt": ">",
    "ge": ">=",
    "lt": "<",
    "le": "<=",
}


def load_authority(authority: Any) -> ApprovalPolicy | None:
    """The policy a host context enforces: given, read from a TOML file (or text), or none."""
    if authority is None or isinstance(authority, ApprovalPolicy):
        return authority
    if isinstance(authority, (str, os.PathLike)):
        return ApprovalPolicy.from_toml(authority)
    raise HostSetupError(
        f"authority must be a runplane.policy.ApprovalPolicy, a path to its TOML file, or None; "
        f"got a {type(authority).__name__}"
    )


def _condition(c: Condition) -> str:
    if c.op == "exists":
        return f"`{c.field}` is {'given' if c.value else 'not given'}"
    value = list(c.value) if c.op == "one_of" else c.value
    return f"`{c.field}` {_OPS[c.op]} {value!r}"


def _rule(rule: Rule) -> str:
    tools = ", ".join(f"`{t}`" for t in rule.tools)
    when = [_condition(c) for c in rule.when]
    if rule.check is not None:
        when.append("a check the host runs holds")
    condition = f" when {' and '.join(when)}" if when else ""
    verb = "need a person's approval" if rule.action == "require" else "need no approval"
    return f"- {rule.name}: calls of {tools}{condition} {verb}."


def authority_text(policy: ApprovalPolicy) -> str:
    """What the model is told about the policy, appended to its instructions.

    The policy is enforced whatever the model makes of this: the text only lets it tell the user
    that a call waits for approval, instead of being surprised by the pause.
    """
    lines = [
        "Authority: some tool calls need a person's approval before they run. The rules below "
        "are checked in order, the first that applies decides; a call that waits for approval "
        "runs once it is approved, and if it is rejected you are told why.",
        *(_rule(r) for r in policy.rules),
        "- Any other call: "
        + ("needs a person's approval." if policy.default == "require" else "needs no approval."),
    ]
    return "\n".join(lines)
