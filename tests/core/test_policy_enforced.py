"""A policy applied to an agent pauses its runs with the SDK's own interruptions, on every backend.

Each test runs on the direct backend (`openai`), the durable one and a third party's (`deadline`,
tests/third_party_backend), through `runplane.runner`, with `agents.testing.ScriptedModel`
playing the model: a call a rule matches stops the run with `result.interruptions`, an unmatched
one runs, `state.approve(item)` lets the run finish, and `rule_for_call` names the rule that
asked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, FunctionTool, RunContextWrapper, WebSearchTool, function_tool, handoff
from agents.items import ToolCallOutputItem
from agents.mcp import MCPServer
from agents.testing import ScriptedModel, assistant_message, function_call
from mcp.types import CallToolResult, GetPromptResult, ListPromptsResult, TextContent
from mcp.types import Tool as MCPTool
from support.durable import sqlite_url

import runplane
import runplane.policy
from runplane import BackendRunner
from runplane.policy import ApprovalPolicy, Condition, PolicyError, Rule, apply, rule_for_call
from runplane.policy import guard as policy_guard

BACKENDS = (
    "openai",
    "durable",
    "deadline",
)  # deadline: a third party's (tests/third_party_backend)
THIRD_PARTY_SRC = Path(__file__).parents[1] / "third_party_backend" / "src"

REFUNDS = ApprovalPolicy(
    (Rule("refunds over 100", tools=["refund"], when=(Condition("amount", "gt", 100),)),)
)


@pytest.fixture(params=BACKENDS)
def runner(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> type[BackendRunner]:
    """`runplane.runner(name)` on a fresh registry, durable runs in this test's own database."""
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", sqlite_url(tmp_path))
    monkeypatch.delenv("RUNPLANE_SERVER_URL", raising=False)
    monkeypatch.syspath_prepend(str(THIRD_PARTY_SRC))
    import runplane_deadline.plugin  # type: ignore[import-not-found]

    registry = runplane.Registry()
    registry.register(runplane_deadline.plugin, name="runplane-deadline")
    return runplane.runner(request.param, registry=registry)


@pytest.fixture(autouse=True)
def _no_process_policy() -> Any:
    runplane.policy.uninstall()
    yield
    runplane.policy.uninstall()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def desk(*turns: list[Any], ran: list[Any]) -> Agent[Any]:
    @function_tool
    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        ran.append(("refund", amount))
        return f"refunded {amount}"

    @function_tool
    def order_status(order_id: str) -> str:
        """Where an order is."""
        ran.append(("order_status", order_id))
        return "shipped"

    return Agent(name="desk", tools=[refund, order_status], model=ScriptedModel(list(turns)))


def outputs(result: Any) -> list[Any]:
    return [i.output for i in result.new_items if isinstance(i, ToolCallOutputItem)]


def test_a_matched_call_pauses_and_runs_once_approved(runner: type[BackendRunner]) -> None:
    ran: list[Any] = []
    agent = desk(
        [function_call("refund", {"order_id": "42", "amount": 150}, call_id="big-1")],
        [assistant_message("refund done")],
        ran=ran,
    )
    guarded = apply(agent, REFUNDS)
    result = runner.run_sync(guarded, "refund 150 on order 42")
    assert [i.tool_name for i in result.interruptions] == ["refund"]
    assert result.interruptions[0].call_id == "big-1"
    assert ran == []
    assert rule_for_call("big-1") == "refunds over 100"

    state = result.to_state()
    state.approve(result.interruptions[0])
    finished = runner.run_sync(guarded, state)
    assert finished.final_output == "refund done"
    assert finished.interruptions == []
    assert ran == [("refund", 150)]


def test_a_rejected_call_never_runs(runner: type[BackendRunner]) -> None:
    ran: list[Any] = []
    agent = desk(
        [function_call("refund", {"order_id": "42", "amount": 900}, call_id="big-2")],
        [assistant_message("not refunded")],
        ran=ran,
    )
    guarded = apply(agent, REFUNDS)
    result = runner.run_sync(guarded, "refund 900")
    state = result.to_state()
    state.reject(result.interruptions[0])
    assert runner.run_sync(guarded, state).final_output == "not refunded"
    assert ran == []


def test_an_unmatched_call_runs_without_asking(runner: type[BackendRunner]) -> None:
    ran: list[Any] = []
    agent = desk(
        [
            function_call("refund", {"order_id": "7", "amount": 40}, call_id="small"),
            function_call("order_status", {"order_id": "7"}, call_id="status"),
        ],
        [assistant_message("all done")],
        ran=ran,
    )
    result = runner.run_sync(apply(agent, REFUNDS), "refund 40, and where is it?")
    assert result.interruptions == []
    assert result.final_output == "all done"
    assert sorted(ran) == [("order_status", "7"), ("refund", 40)]
    assert rule_for_call("small") is None


def test_a_call_id_the_policy_let_run_forgets_who_asked_before(
    runner: type[BackendRunner],
) -> None:
    """Call ids come from the model and may repeat across runs: the record is the last run's."""
    ran: list[Any] = []
    asked = desk(
        [function_call("refund", {"order_id": "1", "amount": 500}, call_id="same")], ran=ran
    )
    assert runner.run_sync(apply(asked, REFUNDS), "refund 500").interruptions
    assert rule_for_call("same") == "refunds over 100"
    allowed = desk(
        [function_call("refund", {"order_id": "1", "amount": 5}, call_id="same")],
        [assistant_message("ok")],
        ran=ran,
    )
    assert runner.run_sync(apply(allowed, REFUNDS), "refund 5").final_output == "ok"
    assert rule_for_call("same") is None


def test_a_streamed_run_pauses_too(runner: type[BackendRunner]) -> None:
    ran: list[Any] = []
    agent = desk([function_call("refund", {"order_id": "1", "amount": 101}, call_id="s1")], ran=ran)

    async def main() -> Any:
        streamed = runner.run_streamed(apply(agent, REFUNDS), "refund 101")
        async for _ in streamed.stream_events():
            pass
        return streamed

    streamed = run(main())
    assert [i.tool_name for i in streamed.interruptions] == ["refund"]
    assert ran == []


def test_a_toml_policy_file_on_both_backends(runner: type[BackendRunner], tmp_path: Path) -> None:
    path = tmp_path / "approvals.toml"
    path.write_text(
        "[[rules]]\n"
        'name = "status of VIP orders"\n'
        'tools = ["order_*"]\n'
        'when = [{ field = "order_id", glob = "vip-*" }]\n'
    )
    ran: list[Any] = []
    agent = desk(
        [function_call("order_status", {"order_id": "vip-9"}, call_id="vip")],
        [assistant_message("ok")],
        ran=ran,
    )
    result = runner.run_sync(apply(agent, ApprovalPolicy.from_toml(path)), "where is vip-9?")
    assert [i.tool_name for i in result.interruptions] == ["order_status"]
    assert rule_for_call("vip") == "status of VIP orders"
    assert ran == []


def test_a_python_check_decides_with_the_runs_context(runner: type[BackendRunner]) -> None:
    def over_budget(tool: str, arguments: dict[str, Any], run_context: Any) -> bool:
        assert isinstance(run_context, RunContextWrapper)
        return bool(arguments["amount"] > run_context.context["budget"])

    policy = ApprovalPolicy((Rule("budget", tools=["refund"], check=over_budget),))
    ran: list[Any] = []
    agent = desk(
        [function_call("refund", {"order_id": "1", "amount": 30}, call_id="b1")],
        [assistant_message("ok")],
        ran=ran,
    )
    result = runner.run_sync(apply(agent, policy), "refund 30", context={"budget": 20})
    assert [i.tool_name for i in result.interruptions] == ["refund"]
    assert rule_for_call("b1") == "budget"


def test_a_nested_as_tool_agents_tool_is_covered(runner: type[BackendRunner]) -> None:
    deleted: list[str] = []

    @function_tool
    def delete_file(path: str) -> str:
        """Delete a file."""
        deleted.append(path)
        return "deleted"

    inner = Agent(
        name="janitor",
        tools=[delete_file],
        model=ScriptedModel(
            [
                [function_call("delete_file", {"path": "/tmp/x"}, call_id="del-1")],
                [assistant_message("cleaned")],
            ]
        ),
    )
    outer = Agent(
        name="boss",
        tools=[inner.as_tool(tool_name="clean_up", tool_description="Clean up.")],
        model=ScriptedModel(
            [
                [function_call("clean_up", {"input": "clean /tmp"}, call_id="ask-1")],
                [assistant_message("all clean")],
            ]
        ),
    )
    policy = ApprovalPolicy((Rule("deletions", tools=["delete_*"]),))
    guarded = apply(outer, policy)
    result = runner.run_sync(guarded, "tidy up")
    assert [i.tool_name for i in result.interruptions] == ["delete_file"]
    assert deleted == []
    assert rule_for_call("del-1") == "deletions"
    assert inner.tools[0].needs_approval is False  # the original agent is untouched


def test_the_nested_call_runs_once_approved(runner: type[BackendRunner]) -> None:
    deleted: list[str] = []

    @function_tool
    def delete_file(path: str) -> str:
        deleted.append(path)
        return "deleted"

    inner = Agent(
        name="janitor",
        tools=[delete_file],
        model=ScriptedModel(
            [
                [function_call("delete_file", {"path": "/tmp/x"}, call_id="del-2")],
                [assistant_message("cleaned")],
            ]
        ),
    )
    outer = Agent(
        name="boss",
        tools=[inner.as_tool(tool_name="clean_up", tool_description="Clean up.")],
        model=ScriptedModel(
            [
                [function_call("clean_up", {"input": "clean /tmp"}, call_id="ask-2")],
                [assistant_message("all clean")],
            ]
        ),
    )
    guarded = apply(outer, ApprovalPolicy((Rule("deletions", tools=["delete_*"]),)))
    result = runner.run_sync(guarded, "tidy up")
    state = result.to_state()
    state.approve(result.interruptions[0])
    finished = runner.run_sync(guarded, state)
    assert finished.final_output == "all clean"
    assert deleted == ["/tmp/x"]
    assert outputs(finished) == ["cleaned"]


def test_a_handoff_targets_tools_are_covered(runner: type[BackendRunner]) -> None:
    ran: list[Any] = []
    billing = desk(
        [function_call("refund", {"order_id": "5", "amount": 500}, call_id="h1")], ran=ran
    )
    billing.name = "billing"
    triage = Agent(
        name="triage",
        handoffs=[handoff(billing)],
        model=ScriptedModel([[function_call("transfer_to_billing", {}, call_id="t1")]]),
    )
    result = runner.run_sync(apply(triage, REFUNDS), "I want my money back")
    assert result.last_agent.name == "billing"
    assert [i.tool_name for i in result.interruptions] == ["refund"]
    assert ran == []


def test_a_handoff_target_stays_guarded_after_a_json_round_trip_of_the_state(
    runner: type[BackendRunner],
) -> None:
    """A RunState read back from JSON finds its agents through the starting agent's handoffs:
    the guarded triage must lead to the guarded billing, or billing's next call would not ask."""
    from agents import RunState

    ran: list[Any] = []
    billing = desk(
        [function_call("refund", {"order_id": "5", "amount": 500}, call_id="j1")],
        [function_call("refund", {"order_id": "6", "amount": 600}, call_id="j2")],
        [assistant_message("both refunded")],
        ran=ran,
    )
    billing.name = "billing"
    triage = Agent(
        name="triage",
        handoffs=[handoff(billing)],
        model=ScriptedModel([[function_call("transfer_to_billing", {}, call_id="t2")]]),
    )
    guarded = apply(triage, REFUNDS)
    result = runner.run_sync(guarded, "two refunds")
    text = result.to_state().to_string()
    state = run(RunState.from_string(guarded, text))
    state.approve(state.get_interruptions()[0])
    second = runner.run_sync(guarded, state)
    assert [i.call_id for i in second.interruptions] == ["j2"]
    assert ran == [("refund", 500)]


def test_a_process_wide_policy_guards_every_run(runner: type[BackendRunner]) -> None:
    ran: list[Any] = []
    agent = desk(
        [function_call("refund", {"order_id": "1", "amount": 250}, call_id="pw")],
        [function_call("refund", {"order_id": "1", "amount": 250}, call_id="pw2")],
        [assistant_message("done")],
        ran=ran,
    )
    with runplane.policy.install(REFUNDS):
        assert runplane.policy.installed() is REFUNDS
        result = runner.run_sync(agent, "refund 250")
        assert [i.tool_name for i in result.interruptions] == ["refund"]
        assert runplane.policy.enforced(agent) is apply(agent, REFUNDS)
    assert runplane.policy.installed() is None
    assert runner.run_sync(agent, "refund 250").final_output == "done"
    assert ran == [("refund", 250)]


def test_a_guarded_agent_replays_a_durable_run_of_the_original(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The durable journal digests what the model is told about each tool: a guarded clone tells
    it the same, so a run recorded with the original replays with the clone, model not asked."""
    from runplane_durable import run_id

    monkeypatch.setenv("RUNPLANE_DATABASE_URL", sqlite_url(tmp_path))
    durable = runplane.runner("durable", registry=runplane.Registry())
    ran: list[Any] = []
    agent = desk(
        [function_call("refund", {"order_id": "3", "amount": 40}, call_id="r1")],
        [assistant_message("refunded")],
        ran=ran,
    )
    with run_id("policy-replay"):
        first = durable.run_sync(agent, "refund 40 on 3")
    guarded = apply(agent, REFUNDS)
    assert guarded.tools[0] is not agent.tools[0]  # the refund tool is a guarded copy
    with run_id("policy-replay"):
        again = durable.run_sync(guarded, "refund 40 on 3")  # the script is spent: no call
    assert again.final_output == first.final_output == "refunded"
    assert ran == [("refund", 40)]


# -- the clone itself ---------------------------------------------------------------------------


def test_applying_again_gives_the_same_clone_and_leaves_the_original_alone() -> None:
    ran: list[Any] = []
    agent = desk(ran=ran)
    guarded = apply(agent, REFUNDS)
    assert guarded is not agent
    assert apply(agent, REFUNDS) is guarded
    assert apply(guarded, REFUNDS) is guarded
    assert runplane.policy.is_applied(guarded, REFUNDS)
    assert not runplane.policy.is_applied(agent)
    assert runplane.policy.original_of(guarded) is agent
    assert runplane.policy.original_of(agent) is agent
    assert guarded.name == agent.name
    assert [t.name for t in guarded.tools] == ["refund", "order_status"]
    assert callable(guarded.tools[0].needs_approval)
    assert agent.tools[0].needs_approval is False
    assert guarded.tools[1] is agent.tools[1]  # no rule can ask about it: the very same tool
    other = ApprovalPolicy((Rule("all", tools=["*"]),))
    assert apply(agent, other) is not guarded


def test_cycles_of_handoffs_and_agent_tools_are_cloned_once() -> None:
    a = Agent(name="a")
    b = Agent(name="b", handoffs=[a])
    a.handoffs = [handoff(b)]
    a.tools = [b.as_tool(tool_name="ask_b", tool_description="Ask b.")]
    b.tools = [a.as_tool(tool_name="ask_a", tool_description="Ask a.")]
    policy = ApprovalPolicy((Rule("asking", tools=["ask_*"]),))
    ga = apply(a, policy)
    gb = policy_guard.apply(b, policy)
    assert gb.handoffs[0] is ga
    assert runplane._sdk.handoff_target(ga.handoffs[0]) is gb
    assert runplane._sdk.agent_of_tool(ga.tools[0]) is gb
    assert runplane._sdk.agent_of_tool(gb.tools[0]) is ga
    assert runplane._sdk.agent_of_tool(a.tools[0]) is b  # the originals still point at each other


def test_a_tools_own_approval_is_kept_even_where_a_rule_allows() -> None:
    @function_tool(needs_approval=True)
    def wire_money(to: str) -> str:
        return "sent"

    ran: list[str] = []
    agent = Agent(
        name="bank",
        tools=[wire_money],
        model=ScriptedModel([[function_call("wire_money", {"to": "x"}, call_id="w1")]]),
    )
    policy = ApprovalPolicy(
        (Rule("money moves freely", tools=["*"], action="allow"),), default="require"
    )
    result = runplane.runner("openai", registry=runplane.Registry()).run_sync(
        apply(agent, policy), "wire"
    )
    assert [i.tool_name for i in result.interruptions] == ["wire_money"]
    assert rule_for_call("w1") is None  # the tool asked, not the policy
    assert ran == []


def test_hosted_tools_are_left_as_they_are() -> None:
    search = WebSearchTool()
    agent = Agent(name="searcher", tools=[search])
    guarded = apply(agent, ApprovalPolicy(default="require"))
    assert guarded.tools[0] is search


def test_an_agent_tool_the_sdk_built_otherwise_is_refused_not_left_unguarded() -> None:
    inner = Agent(name="inner")

    async def invoke(ctx: Any, arguments: str) -> str:
        return "x"

    odd = FunctionTool(
        name="ask_inner",
        description="",
        params_json_schema={"type": "object", "properties": {}},
        on_invoke_tool=invoke,
        strict_json_schema=False,
        _is_agent_tool=True,
        _agent_instance=inner,
    )
    with pytest.raises(PolicyError, match="cannot apply the policy inside tool 'ask_inner'"):
        apply(Agent(name="outer", tools=[odd]), REFUNDS)
    with pytest.raises(TypeError, match=r"takes an agents\.Agent"):
        apply("agent", REFUNDS)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="takes an ApprovalPolicy"):
        apply(inner, {"rules": []})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="install takes an ApprovalPolicy"):
        runplane.policy.install("approvals.toml")  # type: ignore[arg-type]


def test_rule_for_call_remembers_a_bounded_number_of_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(policy_guard, "RECORDED_CALLS", 3)
    for n in range(5):
        policy_guard._record(f"bounded-{n}", f"rule {n}")
    assert [rule_for_call(f"bounded-{n}") for n in range(5)] == [
        None,
        None,
        "rule 2",
        "rule 3",
        "rule 4",
    ]


# -- MCP servers' tools -------------------------------------------------------------------------


class _Files(MCPServer):
    """An in-process MCP server with one tool."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any] | None] = []

    async def connect(self) -> None:
        return None

    @property
    def name(self) -> str:
        return "files"

    async def cleanup(self) -> None:
        return None

    async def list_tools(self, run_context: Any = None, agent: Any = None) -> list[MCPTool]:
        schema = {"type": "object", "properties": {"path": {"type": "string"}}}
        return [MCPTool(name="remove", description="Remove a file.", inputSchema=schema)]

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: Any = None
    ) -> CallToolResult:
        self.calls.append(arguments)
        return CallToolResult(content=[TextContent(type="text", text="removed")])

    async def list_prompts(self) -> ListPromptsResult:
        return ListPromptsResult(prompts=[])

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return GetPromptResult(messages=[])


def test_an_mcp_servers_tools_are_covered(runner: type[BackendRunner]) -> None:
    files = _Files()
    agent = Agent(
        name="fs",
        mcp_servers=[files],
        model=ScriptedModel(
            [
                [function_call("remove", {"path": "/etc/passwd"}, call_id="m1")],
                [assistant_message("removed it")],
            ]
        ),
    )
    policy = ApprovalPolicy.from_toml(
        '[[rules]]\nname = "system files"\ntools = ["remove"]\n'
        'when = [{ field = "path", glob = "/etc/*" }]\n'
    )
    guarded = apply(agent, policy)
    result = runner.run_sync(guarded, "remove /etc/passwd")
    assert [i.tool_name for i in result.interruptions] == ["remove"]
    assert files.calls == []
    assert rule_for_call("m1") == "system files"
    state = result.to_state()
    state.approve(result.interruptions[0])
    assert runner.run_sync(guarded, state).final_output == "removed it"
    assert files.calls == [{"path": "/etc/passwd"}]


def test_unchanged_agents_runner_calls_are_guarded_under_runplane_install(
    runner: type[BackendRunner],
) -> None:
    """`runplane.install(name)` routes `agents.Runner` through the runner classes, which apply
    the process-wide policy: a program that never names runplane's Runner is guarded too."""
    import agents

    ran: list[Any] = []
    agent = desk([function_call("refund", {"order_id": "9", "amount": 999}, call_id="ar")], ran=ran)
    name = runner.selected_backend()
    with runplane.install(name, registry=runner.registry), runplane.policy.install(REFUNDS):
        result = agents.Runner.run_sync(agent, "refund 999")
    assert [i.tool_name for i in result.interruptions] == ["refund"]
    assert rule_for_call("ar") == "refunds over 100"
    assert ran == []


def test_threads_applying_one_policy_to_one_agent_get_one_clone() -> None:
    import threading

    agent = desk(ran=[])
    policy = ApprovalPolicy((Rule("all", tools=["*"]),))
    clones: list[Agent[Any]] = []
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        clones.append(apply(agent, policy))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(clones) == 8
    assert all(c is clones[0] for c in clones)


def _agent_tool_around(impl: Any, agent: Agent[Any]) -> FunctionTool:
    from agents.tool import _FailureHandlingFunctionToolInvoker

    return FunctionTool(
        name="ask",
        description="",
        params_json_schema={"type": "object", "properties": {}},
        on_invoke_tool=_FailureHandlingFunctionToolInvoker(impl, lambda *a: None),
        strict_json_schema=False,
        _is_agent_tool=True,
        _agent_instance=agent,
    )


def _shapes(agent: Agent[Any]) -> dict[str, Any]:
    other = Agent(name="other")

    class Invoke:
        async def __call__(self, ctx: Any, arguments: str) -> str:
            return "x"

    async def no_agent(ctx: Any, arguments: str) -> str:
        return "x"

    def closing_over(value: Any) -> Any:
        self = value

        async def impl(ctx: Any, arguments: str) -> str:
            return str(self)

        return impl

    return {
        "not a function": Invoke(),
        "closes over no agent": no_agent,
        "closes over another agent": closing_over(other),
    }


@pytest.mark.parametrize(
    "shape", ["not a function", "closes over no agent", "closes over another agent"]
)
def test_an_agent_tool_of_any_other_shape_is_refused(shape: str) -> None:
    inner = Agent(name="inner")
    tool = _agent_tool_around(_shapes(inner)[shape], inner)
    assert runplane._sdk.rebind_agent_tool(tool, inner.clone()) is None
    with pytest.raises(PolicyError, match="would go unguarded"):
        apply(Agent(name="outer", tools=[tool]), REFUNDS)
