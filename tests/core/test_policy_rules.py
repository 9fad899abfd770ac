"""`runplane.policy` rules: how a policy decides a call, and the errors of a rule built wrong."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runplane.policy import DEFAULT_RULE, ApprovalPolicy, Condition, PolicyError, Rule
from runplane.policy.rules import json_equal


def decide(policy: ApprovalPolicy, tool: str, arguments: dict[str, Any], context: Any = None):
    return asyncio.run(policy.decide(tool, arguments, context))


def cond(field: str, op: str, value: Any) -> Condition:
    return Condition(field, op, value)  # type: ignore[arg-type]


# -- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "arguments", "expected"),
    [
        ("equals", "prod", {"env": "prod"}, True),
        ("equals", "prod", {"env": "dev"}, False),
        ("equals", 1, {"env": True}, False),  # JSON: true is not 1
        ("equals", 1, {"env": 1.0}, True),
        ("not_equals", "prod", {"env": "dev"}, True),
        ("not_equals", "prod", {"env": "prod"}, False),
        ("one_of", ["a", "b"], {"env": "b"}, True),
        ("one_of", ["a", "b"], {"env": "c"}, False),
        ("glob", "/etc/*", {"env": "/etc/passwd"}, True),
        ("glob", "/etc/*", {"env": "/home/x"}, False),
        ("glob", "/etc/*", {"env": 3}, None),  # not a string: in doubt
        ("gt", 100, {"env": 150}, True),
        ("gt", 100, {"env": 100}, False),
        ("ge", 100, {"env": 100}, True),
        ("lt", 100, {"env": 99.5}, True),
        ("le", 100, {"env": 101}, False),
        ("gt", 100, {"env": "150"}, None),  # a string is not a number: in doubt
        ("gt", 0, {"env": True}, None),  # nor is a boolean
        ("exists", True, {"env": None}, True),
        ("exists", True, {}, False),
        ("exists", False, {}, True),
        ("equals", "prod", {}, None),  # missing: in doubt
        ("gt", 1, {}, None),
    ],
)
def test_a_condition_holds_does_not_or_is_in_doubt(
    op: str, value: Any, arguments: dict[str, Any], expected: bool | None
) -> None:
    assert cond("env", op, value).evaluate(arguments) is expected


def test_a_dotted_field_reaches_into_nested_objects() -> None:
    c = cond("customer.tier", "equals", "gold")
    assert c.evaluate({"customer": {"tier": "gold"}}) is True
    assert c.evaluate({"customer": "gold"}) is None  # not an object: the field is missing
    assert c.evaluate({"customer": {}}) is None


_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(deadline=None)  # the machine is shared: a slow example is not a wrong one
@given(value=_numbers, threshold=_numbers)
def test_numeric_comparisons_agree_with_arithmetic(value: float, threshold: float) -> None:
    args = {"n": value}
    assert cond("n", "gt", threshold).evaluate(args) is (value > threshold)
    assert cond("n", "ge", threshold).evaluate(args) is (value >= threshold)
    assert cond("n", "lt", threshold).evaluate(args) is (value < threshold)
    assert cond("n", "le", threshold).evaluate(args) is (value <= threshold)


_json = st.recursive(
    st.none() | st.booleans() | _numbers | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@settings(deadline=None)
@given(a=_json, b=_json)
def test_json_equality_never_confuses_booleans_and_numbers(a: Any, b: Any) -> None:
    assert json_equal(a, a)
    assert json_equal(a, b) == json_equal(b, a)
    assert not json_equal(True, 1)
    assert not json_equal(False, 0)
    assert not json_equal([True], [1])
    if json_equal(a, b):
        assert cond("x", "equals", b).evaluate({"x": a}) is True
        assert cond("x", "not_equals", b).evaluate({"x": a}) is False


# -- rules and decisions ------------------------------------------------------------------------


def test_first_decisive_rule_wins_and_the_default_decides_the_rest() -> None:
    policy = ApprovalPolicy(
        (
            Rule(
                "small refunds run",
                tools=["refund"],
                when=(cond("amount", "le", 10),),
                action="allow",
            ),
            Rule("refunds", tools=["refund*"]),
            Rule("reads", tools=["get_*"], action="allow"),
        ),
        default="require",
    )
    assert decide(policy, "refund", {"amount": 5}).require is False
    assert decide(policy, "refund", {"amount": 5}).rule == "small refunds run"
    assert decide(policy, "refund", {"amount": 50}).rule == "refunds"
    assert decide(policy, "refund", {}).rule == "refunds"  # the allow rule was in doubt
    assert decide(policy, "refund_all", {}).require is True
    assert decide(policy, "get_order", {}).require is False
    decision = decide(policy, "delete_order", {})
    assert decision.require is True
    assert decision.rule == DEFAULT_RULE


def test_tool_patterns_are_case_sensitive_globs_and_may_match_a_qualified_name() -> None:
    policy = ApprovalPolicy((Rule("writes", tools=["db.write_*", "Delete"]),))
    assert asyncio.run(policy.decide("write_row", {}, names=("db.write_row",))).require
    assert not decide(policy, "write_row", {}).require
    assert not decide(policy, "delete", {}).require
    assert decide(policy, "Delete", {}).require


def test_a_python_check_sees_the_tool_arguments_and_context() -> None:
    seen: list[tuple[str, dict[str, Any], Any]] = []

    def over_budget(tool: str, arguments: dict[str, Any], context: Any) -> bool:
        seen.append((tool, arguments, context))
        return bool(arguments["amount"] > context["budget"])

    policy = ApprovalPolicy((Rule("budget", tools=["*"], check=over_budget),))
    assert decide(policy, "pay", {"amount": 5}, {"budget": 10}).require is False
    assert decide(policy, "pay", {"amount": 50}, {"budget": 10}).require is True
    assert seen[0] == ("pay", {"amount": 5}, {"budget": 10})


def test_an_async_check_is_awaited() -> None:
    async def check(tool: str, arguments: dict[str, Any], context: Any) -> bool:
        await asyncio.sleep(0)
        return tool == "pay"

    policy = ApprovalPolicy((Rule("async", tools=["*"], check=check),))
    assert decide(policy, "pay", {}).require
    assert not decide(policy, "look", {}).require


def test_a_check_that_raises_or_answers_no_bool_fails_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(tool: str, arguments: dict[str, Any], context: Any) -> bool:
        raise KeyError("amount")

    def vague(tool: str, arguments: dict[str, Any], context: Any) -> Any:
        return "yes"

    for check in (broken, vague):
        require = ApprovalPolicy((Rule("r", tools=["*"], check=check),))
        allow = ApprovalPolicy(
            (Rule("a", tools=["*"], check=check, action="allow"),), default="require"
        )
        with caplog.at_level(logging.WARNING, logger="runplane.policy"):
            assert decide(require, "t", {}).require is True
            assert decide(allow, "t", {}).rule == DEFAULT_RULE  # the allow rule did not allow
        assert "treated as in doubt" in caplog.text
        caplog.clear()


def test_conditions_are_checked_before_the_check_and_all_must_hold() -> None:
    called: list[str] = []

    def check(tool: str, arguments: dict[str, Any], context: Any) -> bool:
        called.append(tool)
        return True

    rule = Rule(
        "r", tools=["*"], when=(cond("a", "equals", 1), cond("b", "equals", 2)), check=check
    )
    policy = ApprovalPolicy((rule,))
    assert not decide(policy, "t", {"a": 1, "b": 3}).require
    assert called == []
    assert decide(policy, "t", {"a": 1, "b": 2}).require
    assert called == ["t"]


def test_covers_says_which_tools_a_policy_can_ask_about() -> None:
    policy = ApprovalPolicy((Rule("r", tools=["pay*"]), Rule("a", tools=["*"], action="allow")))
    assert policy.covers(["pay"])
    assert not policy.covers(["look"])  # only an allow rule matches: it never asks
    assert ApprovalPolicy(default="require").covers(["anything"])


# -- errors of rules built in code ------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: cond("", "equals", 1), "not a dotted path"),
        (lambda: cond("a..b", "equals", 1), "not a dotted path"),
        (lambda: cond("a", "bigger", 1), "unknown comparison 'bigger'"),
        (lambda: cond("a", "gt", "100"), "gt on field 'a' needs a finite number"),
        (lambda: cond("a", "gt", True), "needs a finite number"),
        (lambda: cond("a", "lt", float("inf")), "needs a finite number"),
        (lambda: cond("a", "glob", 3), "needs a pattern string"),
        (lambda: cond("a", "exists", "yes"), "needs true or false"),
        (lambda: cond("a", "one_of", []), "non-empty list"),
        (lambda: cond("a", "one_of", "ab"), "non-empty list"),
        (lambda: cond("a", "equals", float("nan")), "only finite numbers"),
        (lambda: cond("a", "equals", object()), "which no JSON argument can equal"),
        (lambda: Rule("", tools=["*"]), "non-empty name"),
        (lambda: Rule("default", tools=["*"]), "give the rule another name"),
        (lambda: Rule("r", tools=[]), "non-empty list of tool names"),
        (lambda: Rule("r", tools=[""]), "non-empty list of tool names"),
        (lambda: Rule("r", tools=3), "list of tool names"),  # type: ignore[arg-type]
        (lambda: Rule("r", tools=["*"], when=("a",)), "list of Condition"),  # type: ignore[arg-type]
        (lambda: Rule("r", tools=["*"], check=3), "check must be a callable"),  # type: ignore[arg-type]
        (lambda: Rule("r", tools=["*"], action="ask"), "neither 'require'"),  # type: ignore[arg-type]
        (lambda: ApprovalPolicy((Rule("r", tools=["a"]), Rule("r", tools=["b"]))), "two rules"),
        (lambda: ApprovalPolicy(("r",)), "list of Rule"),  # type: ignore[arg-type]
        (lambda: ApprovalPolicy(default="ask"), "default 'ask'"),  # type: ignore[arg-type]
    ],
)
def test_a_rule_built_wrong_says_what_is_wrong(build: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        build()


def test_a_single_tool_name_is_a_list_of_one() -> None:
    assert Rule("r", tools="pay").tools == ("pay",)  # type: ignore[arg-type]
