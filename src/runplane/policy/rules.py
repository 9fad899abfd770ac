"""Approval rules: which tool calls need a person's approval, as plain data or Python checks.

An `ApprovalPolicy` is an ordered list of named `Rule`s and a default. For a call, the first rule
whose tool patterns match the tool's name and whose conditions hold decides: `"require"` asks for
approval, `"allow"` does not (and stops the rules after it); when no rule decides, `default` does
("allow" unless set). A condition is three-valued: it holds, it does not, or it is in doubt (the
field is missing, or not of a type the comparison applies to, or a Python check raised). In
doubt, a `require` rule asks and an `allow` rule does not allow: a policy fails closed.

Nothing here imports the Agents SDK: a host can load and check policies without it.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from ..errors import RunplaneError

__all__ = [
    "DEFAULT_RULE",
    "Action",
    "ApprovalPolicy",
    "Check",
    "Condition",
    "Decision",
    "Op",
    "PolicyError",
    "Rule",
]

log = logging.getLogger("runplane.policy")

Action = Literal["require", "allow"]
Op = Literal["equals", "not_equals", "one_of", "glob", "gt", "ge", "lt", "le", "exists"]
ACTIONS: tuple[str, ...] = get_args(Action)
OPS: tuple[str, ...] = get_args(Op)
NUMERIC_OPS = ("gt", "ge", "lt", "le")

DEFAULT_RULE = "default"
"""The name recorded when the policy's default, not a rule, asked for approval (so no rule may
have it)."""

Check: TypeAlias = Callable[[str, dict[str, Any], Any], "bool | Awaitable[bool]"]
"""A Python rule's check: `(tool_name, arguments, run_context) -> bool` (or an awaitable of one);
`run_context` is the SDK's `RunContextWrapper`, your own context being its `.context`."""

Truth: TypeAlias = "bool | None"  # None: in doubt


class PolicyError(RunplaneError, ValueError):
    """A policy that cannot be used as written: says where (file, rule) and what is wrong."""

    def __init__(self, problem: str, *, source: str | None = None, rule: str | None = None):
        self.problem = problem
        self.source = source
        self.rule = rule
        where = "".join(
            (f"{source}: " if source else "", f"rule {rule}: " if rule is not None else "")
        )
        super().__init__(f"{where}{problem}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(a: object, b: object) -> bool:
    """Equality of JSON values as JSON has it: `true` is not `1`, `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _check_json(value: object, what: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise PolicyError(f"{what} is {value!r}; JSON arguments hold only finite numbers")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, what)
        return
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        for item in value.values():
            _check_json(item, what)
        return
    raise PolicyError(
        f"{what} is a {type(value).__name__} ({value!r}), which no JSON argument can equal; "
        "use a string, number, boolean, array or table"
    )


@dataclass(frozen=True)
class Condition:
    """One comparison on a field of the call's JSON arguments.

    `field` is a dotted path into the arguments object (`"customer.tier"`). `op` is one of:
    `equals`, `not_equals` (JSON equality), `one_of` (a list of values), `glob` (an fnmatch
    pattern, case-sensitive, on a string), `gt`/`ge`/`lt`/`le` (numbers; a boolean is not one),
    `exists` (true: the field is present; false: absent). A missing field, or a value of the wrong
    type for `glob` or a numeric comparison, leaves the condition in doubt.
    """

    field: str
    op: Op
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field or "" in self.field.split("."):
            raise PolicyError(
                f"field {self.field!r} is not a dotted path of argument names (like 'amount' or "
                "'customer.tier')"
            )
        if self.op not in OPS:
            raise PolicyError(
                f"unknown comparison {self.op!r} on field {self.field!r}; use one of "
                f"{', '.join(OPS)}"
            )
        what = f"{self.op} on field {self.field!r}"
        if self.op in NUMERIC_OPS:
            if not _is_number(self.value) or not math.isfinite(self.value):
                raise PolicyError(f"{what} needs a finite number, not {self.value!r}")
        elif self.op == "glob":
            if not isinstance(self.value, str):
                raise PolicyError(f"{what} needs a pattern string, not {self.value!r}")
        elif self.op == "exists":
            if not isinstance(self.value, bool):
                raise PolicyError(f"{what} needs true or false, not {self.value!r}")
        elif self.op == "one_of":
            if not isinstance(self.value, (list, tuple)) or not self.value:
                raise PolicyError(f"{what} needs a non-empty list of values, not {self.value!r}")
            _check_json(self.value, what)
            object.__setattr__(self, "value", tuple(self.value))
        else:
            _check_json(self.value, what)

    def evaluate(self, arguments: Mapping[str, Any]) -> Truth:
        found, value = _lookup(arguments, self.field)
        if self.op == "exists":
            return found is self.value
        if not found:
            return None
        if self.op == "equals":
            return json_equal(value, self.value)
        if self.op == "not_equals":
            return not json_equal(value, self.value)
        if self.op == "one_of":
            return any(json_equal(value, v) for v in self.value)
        if self.op == "glob":
            return fnmatch.fnmatchcase(value, self.value) if isinstance(value, str) else None
        if not _is_number(value):
            return None
        if self.op == "gt":
            return bool(value > self.value)
        if self.op == "ge":
            return bool(value >= self.value)
        if self.op == "lt":
            return bool(value < self.value)
        return bool(value <= self.value)


def _lookup(arguments: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = arguments
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _and(values: Iterable[Truth]) -> Truth:
    """Kleene's AND: false if any is false, else in doubt if any is, else true."""
    doubt = False
    for v in values:
        if v is False:
            return False
        if v is None:
            doubt = True
    return None if doubt else True


@dataclass(frozen=True)
class Rule:
    """A named rule: the tools it is about (names or fnmatch globs, case-sensitive), conditions
    on their arguments that must all hold, an optional Python `check`, and its `action`.

    `action="require"` asks for approval; `"allow"` never asks (the rules after it are not
    consulted, but a tool's own `needs_approval` still is).
    """

    name: str
    tools: Sequence[str]  # kept as a tuple
    when: Sequence[Condition] = ()  # kept as a tuple
    check: Check | None = field(default=None, compare=False)
    action: Action = "require"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise PolicyError(f"a rule needs a non-empty name, not {self.name!r}")
        if self.name == DEFAULT_RULE:
            raise PolicyError(
                f"the name {DEFAULT_RULE!r} is what approvals the default asked for are recorded "
                "under; give the rule another name",
                rule=repr(self.name),
            )
        where = repr(self.name)
        tools = (self.tools,) if isinstance(self.tools, str) else self.tools
        if not isinstance(tools, Iterable):
            raise PolicyError("tools must be a list of tool names or globs", rule=where)
        tools = tuple(tools)
        if not tools or not all(isinstance(t, str) and t for t in tools):
            raise PolicyError(
                f'tools must be a non-empty list of tool names or globs ("*" for every tool), '
                f"not {self.tools!r}",
                rule=where,
            )
        object.__setattr__(self, "tools", tools)
        when = tuple(self.when)
        if not all(isinstance(c, Condition) for c in when):
            raise PolicyError("when must be a list of Condition", rule=where)
        object.__setattr__(self, "when", when)
        if self.check is not None and not callable(self.check):
            raise PolicyError(
                f"check must be a callable (tool_name, arguments, context) -> bool, not "
                f"{type(self.check).__name__}",
                rule=where,
            )
        if self.action not in ACTIONS:
            raise PolicyError(
                f"action {self.action!r} is neither 'require' (ask for approval) nor 'allow' "
                "(never ask)",
                rule=where,
            )

    def matches_tool(self, names: Iterable[str]) -> bool:
        """Whether one of the tool's names (its name, its qualified name) matches a pattern."""
        return any(fnmatch.fnmatchcase(n, p) for n in names for p in self.tools)

    async def evaluate(self, tool_name: str, arguments: Mapping[str, Any], context: Any) -> Truth:
        """Whether the rule's conditions and check hold for this call (None: in doubt)."""
        truth = _and(c.evaluate(arguments) for c in self.when)
        if truth is False or self.check is None:
            return truth
        try:
            result = self.check(tool_name, dict(arguments), context)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.warning(
                "policy rule %r: the check raised for tool %r; treated as in doubt",
                self.name,
                tool_name,
                exc_info=True,
            )
            return _and((truth, None))
        if not isinstance(result, bool):
            log.warning(
                "policy rule %r: the check returned %s, not a bool, for tool %r; treated as in "
                "doubt",
                self.name,
                type(result).__name__,
                tool_name,
            )
            return _and((truth, None))
        return _and((truth, result))


@dataclass(frozen=True)
class Decision:
    """What a policy decided for one call: whether it needs approval, and which rule said so
    (`DEFAULT_RULE` when the default did)."""

    require: bool
    rule: str


@dataclass(frozen=True)
class ApprovalPolicy:
    """Ordered rules, first decisive one wins; `default` decides the calls no rule does.

    Load one from data with `ApprovalPolicy.from_toml(path_or_text)` or `from_data(mapping)`,
    write it with `to_toml()`; apply it with `runplane.policy.apply(agent, policy)`.
    """

    rules: Sequence[Rule] = ()  # kept as a tuple
    default: Action = "allow"

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        if not all(isinstance(r, Rule) for r in rules):
            raise PolicyError("rules must be a list of Rule")
        seen: set[str] = set()
        for r in rules:
            if r.name in seen:
                raise PolicyError(
                    "two rules have this name; each needs its own (approvals record it)",
                    rule=repr(r.name),
                )
            seen.add(r.name)
        object.__setattr__(self, "rules", rules)
        if self.default not in ACTIONS:
            raise PolicyError(
                f"default {self.default!r} is neither 'allow' (calls no rule decides run) nor "
                "'require' (they ask for approval)"
            )

    def covers(self, names: Iterable[str]) -> bool:
        """Whether the policy can ask for approval of a tool with these names."""
        names = tuple(names)
        return self.default == "require" or any(
            r.action == "require" and r.matches_tool(names) for r in self.rules
        )

    async def decide(
        self,
        tool_name: str,
        arguments: Mapping[str, Any],
        context: Any = None,
        *,
        names: Iterable[str] = (),
    ) -> Decision:
        """The decision for a call of `tool_name` (also known as `names`) with `arguments`."""
        all_names = (tool_name, *names)
        for rule in self.rules:
            if not rule.matches_tool(all_names):
                continue
            truth = await rule.evaluate(tool_name, arguments, context)
            if rule.action == "require" and truth is not False:
                return Decision(True, rule.name)
            if rule.action == "allow" and truth is True:
                return Decision(False, rule.name)
        return Decision(self.default == "require", DEFAULT_RULE)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str | None = None) -> ApprovalPolicy:
        """A policy from plain data (what TOML, JSON or YAML loads); see `to_data`."""
        from .data import policy_from_data

        return policy_from_data(data, source=source)

    @classmethod
    def from_toml(cls, path_or_text: Any) -> ApprovalPolicy:
        """A policy from a TOML file (a path), or TOML text (a str holding '=' or a newline, or
        blank: an empty policy)."""
        from .data import policy_from_toml

        return policy_from_toml(path_or_text)

    def to_data(self) -> dict[str, Any]:
        """The policy as plain data, `from_data`'s input (Python checks cannot be written)."""
        from .data import policy_to_data

        return policy_to_data(self)

    def to_toml(self) -> str:
        """The policy as TOML text that `from_toml` reads back equal."""
        from .data import policy_to_toml

        return policy_to_toml(self)
