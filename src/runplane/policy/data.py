"""Policies as data: read from TOML (or any mapping a host loads), written back as TOML.

The format (docs/approvals.md, "Enforced policies"):

    default = "allow"                 # or "require"; optional

    [[rules]]
    name = "refunds over 100"         # recorded with the approval it asks for
    tools = ["refund", "refund_*"]    # names or fnmatch globs
    action = "require"                # optional; "allow" never asks
    when = [{ field = "amount", gt = 100 }]   # optional; all must hold

A table in `when` with several comparisons (`{ field = "n", ge = 1, le = 9 }`) is one condition
per comparison. Every error names the file (or "<policy text>"), the rule and what is wrong.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from .rules import OPS, ApprovalPolicy, Condition, PolicyError, Rule

__all__ = ["policy_from_data", "policy_from_toml", "policy_to_data", "policy_to_toml"]

_TOP_KEYS = ("default", "rules")
_RULE_KEYS = ("name", "tools", "action", "when")
TEXT_SOURCE = "<policy text>"


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    tomli = importlib.import_module("tomli")  # the stdlib's tomllib before 3.11 (a dependency)
    return cast("dict[str, Any]", tomli.loads(text))


def policy_from_toml(path_or_text: Any) -> ApprovalPolicy:
    """A policy from a TOML file, or from TOML text (a str holding '=' or a newline, or blank)."""
    if isinstance(path_or_text, str) and (
        "\n" in path_or_text or "=" in path_or_text or not path_or_text.strip()
    ):
        text, source = path_or_text, TEXT_SOURCE
    elif isinstance(path_or_text, (str, os.PathLike)):
        path = Path(path_or_text)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(
                "no such policy file (pass a path to a TOML file, or the TOML text itself)",
                source=source,
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read the policy file: {exc}", source=source) from exc
    else:
        raise PolicyError(
            f"from_toml takes a path or TOML text, not a {type(path_or_text).__name__}"
        )
    try:
        data = _toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError: says the line and column
        raise PolicyError(f"not valid TOML: {exc}", source=source) from exc
    return policy_from_data(data, source=source)


def policy_from_data(data: Mapping[str, Any], *, source: str | None = None) -> ApprovalPolicy:
    """A policy from a mapping of `default` and `rules` (what TOML, JSON or YAML loads)."""
    if not isinstance(data, Mapping):
        raise PolicyError(
            f"a policy is a table of 'default' and 'rules', not a {type(data).__name__}",
            source=source,
        )
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise PolicyError(
            f"unknown key {unknown[0]!r}; a policy has {_TOP_KEYS[0]!r} and {_TOP_KEYS[1]!r} "
            "(each rule is a [[rules]] table)",
            source=source,
        )
    rules_data = data.get("rules", [])
    if not isinstance(rules_data, list):
        raise PolicyError("'rules' must be an array of tables ([[rules]] in TOML)", source=source)
    rules: list[Rule] = []
    names: set[str] = set()
    for index, item in enumerate(rules_data, start=1):
        rule = _rule(item, index, source)
        if rule.name in names:
            raise PolicyError(
                f"two rules have this name (the second is rule #{index}); each needs its own, "
                "as approvals record it",
                source=source,
                rule=repr(rule.name),
            )
        names.add(rule.name)
        rules.append(rule)
    try:
        return ApprovalPolicy(tuple(rules), default=data.get("default", "allow"))
    except PolicyError as exc:
        raise PolicyError(exc.problem, source=source, rule=exc.rule) from None


def _rule(item: Any, index: int, source: str | None) -> Rule:
    where = f"#{index}"
    if not isinstance(item, Mapping):
        raise PolicyError(
            f"a rule is a table, not a {type(item).__name__}", source=source, rule=where
        )
    name = item.get("name")
    if isinstance(name, str) and name.strip():
        where = f"#{index} ({name!r})"
    unknown = [k for k in item if k not in _RULE_KEYS]
    if unknown:
        hint = (
            "; a Python check cannot be written as data: build Rule(..., check=f) in code"
            if unknown[0] == "check"
            else ""
        )
        raise PolicyError(
            f"unknown key {unknown[0]!r}; a rule has {', '.join(map(repr, _RULE_KEYS))}{hint}",
            source=source,
            rule=where,
        )
    if "name" not in item:
        raise PolicyError("a rule needs a name", source=source, rule=where)
    if "tools" not in item:
        raise PolicyError(
            'a rule needs tools: names or globs (["*"] for every tool)', source=source, rule=where
        )
    if not isinstance(item["tools"], list):
        raise PolicyError(
            f'tools must be a list of names or globs (tools = ["{item["tools"]}"]), not '
            f"{type(item['tools']).__name__}",
            source=source,
            rule=where,
        )
    when_data = item.get("when", [])
    if isinstance(when_data, Mapping):
        when_data = [when_data]
    if not isinstance(when_data, list):
        raise PolicyError(
            'when must be a list of tables like { field = "amount", gt = 100 }',
            source=source,
            rule=where,
        )
    try:
        conditions = [c for entry in when_data for c in _conditions(entry)]
        return Rule(
            name=item["name"],
            tools=tuple(item["tools"]),
            when=tuple(conditions),
            action=item.get("action", "require"),
        )
    except PolicyError as exc:
        raise PolicyError(exc.problem, source=source, rule=where) from None


def _conditions(entry: Any) -> list[Condition]:
    if not isinstance(entry, Mapping):
        raise PolicyError(
            f'each entry of when is a table like {{ field = "amount", gt = 100 }}, not {entry!r}'
        )
    if "field" not in entry:
        raise PolicyError(f"a condition needs the field it compares: {dict(entry)!r}")
    ops = [k for k in entry if k != "field"]
    if not ops:
        raise PolicyError(
            f"the condition on field {entry['field']!r} compares nothing; add one of "
            f"{', '.join(OPS)}"
        )
    # A value no JSON argument can hold (a TOML date) is refused by Condition.
    return [Condition(entry["field"], op, entry[op]) for op in ops]


def policy_to_data(policy: ApprovalPolicy) -> dict[str, Any]:
    """The policy as plain data: `policy_from_data(policy_to_data(p)) == p`."""
    rules: list[dict[str, Any]] = []
    for rule in policy.rules:
        if rule.check is not None:
            raise PolicyError(
                "has a Python check, which cannot be written as data; keep this policy in code",
                rule=repr(rule.name),
            )
        entry: dict[str, Any] = {"name": rule.name, "tools": list(rule.tools)}
        if rule.action != "require":
            entry["action"] = rule.action
        if rule.when:
            entry["when"] = [
                {"field": c.field, c.op: list(c.value) if c.op == "one_of" else c.value}
                for c in rule.when
            ]
        rules.append(entry)
    return {"default": policy.default, "rules": rules}


def policy_to_toml(policy: ApprovalPolicy) -> str:
    """The policy as TOML text: `policy_from_toml(policy_to_toml(p)) == p`."""
    data = policy_to_data(policy)
    lines = [f"default = {_toml(data['default'])}"]
    for rule in data["rules"]:
        lines += ["", "[[rules]]"]
        for key in ("name", "tools", "action"):
            if key in rule:
                lines.append(f"{key} = {_toml(rule[key])}")
        if "when" in rule:
            lines.append("when = [")
            lines += [f"    {_toml(c)}," for c in rule["when"]]
            lines.append("]")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML value (inline) for the JSON-like values a policy holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # Condition refuses these; never written
            raise PolicyError(f"{value!r} cannot be written as a JSON comparison value")
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, once DEL (which TOML wants escaped) is.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if value is None:
        raise PolicyError("null cannot be written in TOML; keep this policy in code or JSON")
    raise PolicyError(f"{type(value).__name__} cannot be written in TOML")


def _key(key: str) -> str:
    if key and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in key):
        return key
    return _toml(key)
