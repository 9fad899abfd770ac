"""Policies as data: TOML files and text, mappings, the way back to TOML, and every error."""

from __future__ import annotations

import asyncio
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runplane.policy import ApprovalPolicy, Condition, PolicyError, Rule

POLICY = """
default = "allow"

[[rules]]
name = "small refunds run"
tools = ["refund"]
action = "allow"
when = [{ field = "amount", le = 10 }]

[[rules]]
name = "refunds"
tools = ["refund", "refund_*"]

[[rules]]
name = "production writes"
tools = ["db_*"]
when = [
    { field = "env", one_of = ["prod", "production"] },
    { field = "rows", ge = 1, le = 1000 },
]
"""


def test_a_toml_file_loads_into_rules_in_order(tmp_path: Path) -> None:
    path = tmp_path / "approvals.toml"
    path.write_text(POLICY)
    for source in (path, str(path)):
        policy = ApprovalPolicy.from_toml(source)
        assert [r.name for r in policy.rules] == [
            "small refunds run",
            "refunds",
            "production writes",
        ]
        assert policy.default == "allow"
        assert policy.rules[0].action == "allow"
        assert policy.rules[1].tools == ("refund", "refund_*")
        assert policy.rules[2].when == (
            Condition("env", "one_of", ("prod", "production")),
            Condition("rows", "ge", 1),
            Condition("rows", "le", 1000),
        )
    assert ApprovalPolicy.from_toml(POLICY) == policy


def test_a_loaded_policy_decides_as_written() -> None:
    policy = ApprovalPolicy.from_toml(POLICY)

    def rule(tool: str, **arguments: Any) -> tuple[bool, str]:
        decision = asyncio.run(policy.decide(tool, arguments))
        return decision.require, decision.rule

    assert rule("refund", amount=5) == (False, "small refunds run")
    assert rule("refund", amount=50) == (True, "refunds")
    assert rule("db_write", env="prod", rows=3) == (True, "production writes")
    assert rule("db_write", env="prod", rows=5000) == (False, "default")
    assert rule("db_write", env="dev", rows=3) == (False, "default")


def test_a_one_line_policy_text_is_text_not_a_path() -> None:
    assert ApprovalPolicy.from_toml('default = "require"').default == "require"
    assert ApprovalPolicy.from_toml("").rules == ()


def test_from_data_takes_what_json_or_yaml_loads() -> None:
    data = {"rules": [{"name": "all", "tools": ["*"], "when": {"field": "x", "exists": True}}]}
    policy = ApprovalPolicy.from_data(data)
    assert policy.rules[0].when == (Condition("x", "exists", True),)
    assert policy.to_data() == {
        "default": "allow",
        "rules": [{"name": "all", "tools": ["*"], "when": [{"field": "x", "exists": True}]}],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\ndefault = \n", "<policy text>: not valid TOML: .*line 2"),
        ('rule = []\ndefault = "allow"', "<policy text>: unknown key 'rule'; a policy has"),
        ('rules = "x"\n', "'rules' must be an array of tables"),
        ("rules = [1]\n", "rule #1: a rule is a table, not a int"),
        ('[[rules]]\ntools = ["a"]\n', "rule #1: a rule needs a name"),
        ('[[rules]]\nname = "r"\n', "rule #1 \\('r'\\): a rule needs tools"),
        ('[[rules]]\nname = "r"\ntools = "a"\n', "rule #1 \\('r'\\): tools must be a list"),
        ('[[rules]]\nname = "r"\ntools = []\n', "tools must be a non-empty list"),
        ('[[rules]]\nname = "r"\ntools = ["a"]\nask = true\n', "unknown key 'ask'; a rule has"),
        ('[[rules]]\nname = "r"\ntools = ["a"]\ncheck = "f"\n', "a Python check cannot be written"),
        ('[[rules]]\nname = "r"\ntools = ["a"]\naction = "ask"\n', "action 'ask' is neither"),
        ('[[rules]]\nname = "r"\ntools = ["a"]\nwhen = 3\n', "when must be a list of tables"),
        ('[[rules]]\nname = "r"\ntools = ["a"]\nwhen = [3]\n', "each entry of when is a table"),
        ('[[rules]]\nname = "r"\ntools = ["a"]\nwhen = [{ gt = 1 }]\n', "needs the field"),
        ('[[rules]]\nname = "r"\ntools = ["a"]\nwhen = [{ field = "a" }]\n', "compares nothing"),
        (
            '[[rules]]\nname = "r"\ntools = ["a"]\nwhen = [{ field = "a", gt = "1" }]\n',
            "rule #1 \\('r'\\): gt on field 'a' needs a finite number",
        ),
        (
            '[[rules]]\nname = "r"\ntools = ["a"]\nwhen = [{ field = "a", near = 1 }]\n',
            "unknown comparison 'near'",
        ),
        (
            '[[rules]]\nname = "r"\ntools = ["a"]\nwhen = [{ field = "d", equals = 2026-01-01 }]\n',
            "equals on field 'd' is a date",
        ),
        (
            '[[rules]]\nname = "r"\ntools = ["a"]\n[[rules]]\nname = "r"\ntools = ["b"]\n',
            "rule 'r': two rules have this name \\(the second is rule #2\\)",
        ),
        ('[[rules]]\nname = "default"\ntools = ["a"]\n', "give the rule another name"),
        ('default = "ask"\n', "<policy text>: default 'ask' is neither"),
    ],
)
def test_a_bad_policy_names_where_and_what(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        ApprovalPolicy.from_toml(text)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "approvals.toml"
    path.write_text('[[rules]]\nname = "r"\ntools = ["a"]\naction = "maybe"\n')
    with pytest.raises(PolicyError, match=f"^{path}: rule #1 \\('r'\\): action 'maybe'") as err:
        ApprovalPolicy.from_toml(path)
    assert err.value.source == str(path)
    assert err.value.rule == "#1 ('r')"
    path.write_text("default = [")
    with pytest.raises(PolicyError, match=f"^{path}: not valid TOML"):
        ApprovalPolicy.from_toml(path)


def test_a_missing_or_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        ApprovalPolicy.from_toml(tmp_path / "absent.toml")
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        ApprovalPolicy.from_toml(tmp_path)  # a directory
    (tmp_path / "latin1.toml").write_bytes(b'default = "\xe9"')
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        ApprovalPolicy.from_toml(tmp_path / "latin1.toml")
    with pytest.raises(PolicyError, match="takes a path or TOML text, not a int"):
        ApprovalPolicy.from_toml(3)


def test_from_data_refuses_what_is_not_a_table() -> None:
    with pytest.raises(PolicyError, match="a policy is a table of 'default' and 'rules'"):
        ApprovalPolicy.from_data(["rules"])  # type: ignore[arg-type]


def test_a_python_check_cannot_be_written_as_data() -> None:
    policy = ApprovalPolicy((Rule("code", tools=["*"], check=lambda t, a, c: True),))
    with pytest.raises(PolicyError, match="rule 'code': has a Python check"):
        policy.to_toml()


# -- the way back to TOML -----------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_number = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
_scalar = st.one_of(st.booleans(), _number, _text)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_field = st.lists(
    st.text(string.ascii_letters + "_-", min_size=1, max_size=6), min_size=1, max_size=3
).map(".".join)


@st.composite
def _conditions(draw: st.DrawFn) -> Condition:
    op = draw(
        st.sampled_from(
            ["equals", "not_equals", "one_of", "glob", "gt", "ge", "lt", "le", "exists"]
        )
    )
    value: Any
    if op in ("gt", "ge", "lt", "le"):
        value = draw(_number)
    elif op == "glob":
        value = draw(_text)
    elif op == "exists":
        value = draw(st.booleans())
    elif op == "one_of":
        value = draw(st.lists(_value, min_size=1, max_size=3))
    else:
        value = draw(_value)
    return Condition(draw(_field), op, value)


@st.composite
def _policies(draw: st.DrawFn) -> ApprovalPolicy:
    names = draw(
        st.lists(_text.filter(lambda n: n.strip() and n != "default"), unique=True, max_size=4)
    )
    rules = tuple(
        Rule(
            name,
            tools=tuple(draw(st.lists(_text.filter(bool), min_size=1, max_size=3))),
            when=tuple(draw(st.lists(_conditions(), max_size=3))),
            action=draw(st.sampled_from(["require", "allow"])),
        )
        for name in names
    )
    return ApprovalPolicy(rules, default=draw(st.sampled_from(["allow", "require"])))


# deadline=None: the machine is shared and loaded; a slow example is not a wrong one.
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=_policies())
def test_to_toml_reads_back_as_the_same_policy(policy: ApprovalPolicy) -> None:
    assert ApprovalPolicy.from_toml(policy.to_toml()) == policy
    assert ApprovalPolicy.from_data(policy.to_data()) == policy


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=_policies(), arguments=st.dictionaries(_text, _value, max_size=4))
def test_a_policy_read_back_decides_every_call_alike(
    policy: ApprovalPolicy, arguments: dict[str, Any]
) -> None:
    again = ApprovalPolicy.from_toml(policy.to_toml())
    tools = [tool for rule in policy.rules for tool in rule.tools]

    async def both() -> list[tuple[Any, Any]]:
        return [
            (await again.decide(t, arguments), await policy.decide(t, arguments)) for t in tools
        ]

    for read_back, original in asyncio.run(both()):
        assert read_back == original
