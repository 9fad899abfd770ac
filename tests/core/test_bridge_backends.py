"""Host events are the same on the direct backend, the durable one and a third party's, for
generated scripts, streamed and not, through the hook and through `bridge(result)`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from hypothesis import HealthCheck, example, given, settings
from runplane_conformance._bridged import Bridged, bridged, normalised, recording
from runplane_conformance._scripts import EXAMPLES, Script, scripts
from support.durable import sqlite_url

import runplane

THIRD_PARTY_SRC = Path(__file__).parents[1] / "third_party_backend" / "src"
BACKENDS = ("openai", "durable", "deadline")
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runplane.Registry]:
    """A fresh registry whose durable backend has its own SQLite database, plus the third
    party's backend registered from its source tree."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNPLANE_DATABASE_URL", sqlite_url(tmp_path_factory.mktemp("bridge")))
        patch.syspath_prepend(str(THIRD_PARTY_SRC))
        import runplane_deadline.plugin  # type: ignore[import-not-found]

        reg = runplane.Registry()
        reg.register(runplane_deadline.plugin, name="runplane-deadline")
        yield reg


def _deltas_of(events: list[dict[str, Any]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for event in events:
        if event["kind"] == "text_delta":
            joined[event["message_id"]] = joined.get(event["message_id"], "") + event["delta"]
    return joined


def _invariants(streamed: Bridged, run: Bridged) -> None:
    """What holds for any run: one start, one end, deltas adding up, usage adding up, and the
    streamed run told as the non-streamed one but for the deltas."""
    for got in (streamed, run):
        kinds = [e["kind"] for e in got.hooked]
        assert kinds[0] == "run_started"
        assert [k for k in kinds if k.startswith("run_") and k != "run_started"] == kinds[-1:]
    assert streamed.iterated == streamed.hooked
    assert streamed.outcome == run.outcome
    if streamed.outcome != "returned":
        return
    without = [e for e in streamed.hooked if e["kind"] not in ("text_delta", "reasoning_delta")]
    assert without == run.hooked
    texts = {e["message_id"]: e["text"] for e in streamed.hooked if e["kind"] == "text_done"}
    for message_id, joined in _deltas_of(streamed.hooked).items():
        assert texts[message_id] == joined
    usages = [e for e in run.hooked if e["kind"] == "model_usage"]
    assert len(usages) == run.model_calls
    totals = run.hooked[-1]["usage"]
    for field in ("requests", "input_tokens", "output_tokens", "total_tokens"):
        assert sum(u[field] for u in usages) == totals[field]


@pytest.mark.parametrize("backend", BACKENDS)
def test_generated_scripts_are_told_alike_on_every_backend(
    registry: runplane.Registry, backend: str
) -> None:
    runner = runplane.runner(backend, registry=registry)
    direct = runplane.runner("openai", registry=registry)

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scripts())
    def check(script: Script) -> None:
        streamed = bridged(runner, "run_streamed", script, TIMEOUT, registry)
        run = bridged(runner, "run", script, TIMEOUT, registry)
        _invariants(streamed, run)
        if backend != "openai":
            assert (
                streamed.hooked == bridged(direct, "run_streamed", script, TIMEOUT, registry).hooked
            )
            assert run.hooked == bridged(direct, "run_sync", script, TIMEOUT, registry).hooked

    for fixed in EXAMPLES:
        check = example(fixed)(check)
    check()


@function_tool(needs_approval=True)
async def delete(path: str) -> str:
    """Deletes a file (asks first)."""
    return f"deleted {path}"


def _approval_agent() -> Agent[Any]:
    model = ScriptedModel(
        [
            [function_call("delete", '{"path":"a"}', call_id="d1")],
            [assistant_message("gone", item_id="m-end")],
        ]
    )
    return Agent(name="janitor", model=model, tools=[delete])


@pytest.mark.parametrize("streamed", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_approvals_are_asked_and_decided_alike_on_every_backend(
    registry: runplane.Registry, backend: str, streamed: bool
) -> None:
    runner = runplane.runner(backend, registry=registry)

    async def go(agent: Agent[Any], run_input: Any) -> Any:
        if not streamed:
            return await runner.run(agent, run_input)
        result = runner.run_streamed(agent, run_input)
        async for _ in result.stream_events():
            pass
        return result

    agent = _approval_agent()
    with recording(registry) as first:
        paused = asyncio.run(go(agent, "clean up"))
    state = paused.to_state()
    state.reject(state.get_interruptions()[0], rejection_message="keep it")
    with recording(registry) as second:
        resumed = asyncio.run(go(agent, state))
    assert resumed.final_output == "gone"
    first_id, asked = first.only_run()
    second_id, decided = second.only_run()
    common = {"run_id": "<run>", "agent_name": "janitor"}
    assert normalised(asked, first_id)[-2:] == [
        {
            **common,
            "kind": "approval_requested",
            "call_id": "d1",
            "tool_name": "delete",
            "arguments": '{"path":"a"}',
        },
        {
            **common,
            "kind": "run_finished",
            "final_output": None,
            "usage": {"requests": 1, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
        },
    ]
    told = [e for e in normalised(decided, second_id) if e["kind"] != "text_delta"]
    assert told[:3] == [
        {**common, "kind": "run_started"},
        {
            **common,
            "kind": "approval_decided",
            "call_id": "d1",
            "tool_name": "delete",
            "approved": False,
            "message": "keep it",
        },
        {
            **common,
            "kind": "tool_output",
            "call_id": "d1",
            "tool_name": "delete",
            "output": "keep it",
        },
    ]
    assert [e["kind"] for e in told[3:]] == ["model_usage", "text_done", "run_finished"]
