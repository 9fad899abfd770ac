"""Durable under faults: a program changed between crash and resume, strings a database cannot
hold, errors of the journal itself, payloads too large to store twice, and a lost lease."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from agents import (
    Agent,
    FunctionTool,
    ModelSettings,
    RunContextWrapper,
    RunHooks,
    function_tool,
    handoff,
)
from agents.exceptions import UserError
from agents.items import ToolCallOutputItem
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from openai.types.responses import ResponseFunctionToolCall
from runplane_durable import (
    DatabaseError,
    DurableBackend,
    LocalEngine,
    ReplayDivergenceError,
    RunLeasedError,
    run_id,
)
from runplane_durable.errors import UnstorableNameError
from support.durable import run_async
from support.durable_faults import payload_chars, sql_call, steal_lease
from typer.testing import CliRunner

from runplane.cli import build_app


class Stop(BaseException):
    """Stands in for a process dying mid-run: escapes the SDK without being handled."""


# -- a program changed between crash and resume ------------------------------------------------


class Ledger:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stop_at: str | None = "b"  # the first run dies in the tool call for "b"

    def lookup(self, key: str) -> str:
        self.calls.append(key)
        if key == self.stop_at:
            self.stop_at = None
            raise Stop
        return f"value-of-{key}"


def _lookup_tool(ledger: Ledger, doc: str = "Look a key up.", param: str = "key") -> Any:

    schema = {
        "type": "object",
        "properties": {param: {"type": "string"}},
        "required": [param],
        "additionalProperties": False,
    }

    async def invoke(_ctx: Any, arguments: str) -> str:
        return ledger.lookup(json.loads(arguments)[param])

    return FunctionTool(
        name="lookup", description=doc, params_json_schema=schema, on_invoke_tool=invoke
    )


class Verdict(pydantic.BaseModel):
    ok: bool


def _clerk(model: Any, ledger: Ledger, **changes: Any) -> Agent[Any]:
    """The program as it was, or with one thing changed (what `changes` names)."""
    helper = Agent(name="helper", handoff_description=changes.pop("helper_doc", "Helps."))
    tool = _lookup_tool(
        ledger, doc=changes.pop("tool_doc", "Look a key up."), param=changes.pop("param", "key")
    )
    fields: dict[str, Any] = {
        "name": "clerk",
        "instructions": "Look things up.",
        "model": model,
        "tools": [tool],
        "handoffs": [helper],
        "model_settings": ModelSettings(temperature=0.2),
    }
    fields.update(changes)
    return Agent(**fields)


def _clerk_script() -> list[Any]:
    return [
        [function_call("lookup", {"key": "a"}, call_id="c1")],
        [function_call("lookup", {"key": "b"}, call_id="c2")],
        [assistant_message("done")],
    ]


CHANGES: dict[str, tuple[dict[str, Any], str]] = {
    "instructions": ({"instructions": "Look things up, politely."}, "the instructions"),
    "tool description": ({"tool_doc": "Find a key."}, "tool 'lookup'"),
    "tool parameters": ({"param": "name"}, "tool 'lookup'"),
    "model settings": ({"model_settings": ModelSettings(temperature=0.9)}, "the model settings"),
    "output type": ({"output_type": Verdict}, "the output type"),
    "handoff description": ({"helper_doc": "Helps with anything."}, "the handoffs"),
    "handoff added": (
        {"handoffs": [Agent(name="helper"), handoff(Agent(name="other"))]},
        "the handoffs",
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_to_what_the_model_is_asked_is_refused_and_named(
    backend: DurableBackend, change: str
) -> None:
    changes, named = CHANGES[change]
    ledger = Ledger()
    rid = f"changed-{change.replace(' ', '-')}"

    async def go() -> None:
        with run_id(rid), pytest.raises(Stop):
            await backend.run(_clerk(ScriptedModel(_clerk_script()), ledger), "look up a and b")
        changed = _clerk(ScriptedModel([]), ledger, **changes)
        with run_id(rid), pytest.raises(ReplayDivergenceError) as info:
            await backend.run(changed, "look up a and b")
        message = str(info.value)
        assert "diverged at model call #1" in message
        assert named in message
        assert "new run id" in message
        # The unchanged program still resumes: the refusal wrote nothing.
        with run_id(rid):
            result = await backend.run(
                _clerk(ScriptedModel(_clerk_script()[2:]), ledger), "look up a and b"
            )
        assert result.final_output == "done"
        assert ledger.calls == ["a", "b", "b"]

    run_async(go())


def test_an_unchanged_tool_keeps_its_cached_digest_and_a_replaced_description_does_not(
    sqlite_backend: DurableBackend,
) -> None:
    """A tool's digest is computed once, not per step; reassigning its description (a live
    program changing a tool) is still seen."""
    from runplane_durable.runtime import intercept

    ledger = Ledger()
    agent = _clerk(
        ScriptedModel(
            [
                [function_call("lookup", {"key": "a"}, call_id="c1")],
                [function_call("lookup", {"key": "c"}, call_id="c2")],
                [assistant_message("done")],
            ]
        ),
        ledger,
    )
    tool = agent.tools[0]
    first = intercept.tool_digest(tool)
    assert intercept.tool_digest(tool) is first  # cached: the same object, no new hash
    with run_id("cached-digests"):
        sqlite_backend.run_sync(agent, "look up a and c")
    assert intercept.tool_digest(tool) is first
    tool.description = "Something else."  # type: ignore[attr-defined]
    assert intercept.tool_digest(tool) != first


# A journal written before model calls were fingerprinted part by part: its fingerprints are the
# ones that version computed for this program (kept here verbatim), and its entries carry no
# per-part digests. It must still resume, and still refuse a changed program.
LEGACY_FINGERPRINTS = {
    "0": "fa7f63534ffb7b15c2a06826b9ecc338",
    "1": "d086f4fc1e92a73ff856f0008f3b0393",
}


def _legacy_program(
    model: Any, instructions: str = "Look things up.", *, stop: bool = False
) -> Agent[Any]:
    @function_tool
    def lookup(key: str) -> str:
        """Look a key up."""
        if stop and key == "b":
            raise Stop
        return f"value-of-{key}"

    return Agent(name="clerk", instructions=instructions, model=model, tools=[lookup])


async def _make_legacy(backend: DurableBackend, rid: str) -> None:
    with run_id(rid), pytest.raises(Stop):
        await backend.run(
            _legacy_program(ScriptedModel(_clerk_script()), stop=True), "look up a and b"
        )
    for entry in await backend.engine.read_journal(rid):
        if entry.kind != "model":
            continue
        payload = {k: v for k, v in entry.payload.items() if k not in ("parts", "tool_digests")}
        await sql_call(
            backend,
            "UPDATE runplane_journal SET fingerprint = :fp, payload = :payload "
            "WHERE run_id = :rid AND seq = :seq",
            fp=LEGACY_FINGERPRINTS[entry.key],
            payload=json.dumps(payload),
            rid=rid,
            seq=entry.seq,
        )


def test_a_journal_without_per_part_digests_still_replays(backend: DurableBackend) -> None:
    async def go() -> None:
        await _make_legacy(backend, "legacy-resumes")
        with run_id("legacy-resumes"):
            result = await backend.run(
                _legacy_program(ScriptedModel(_clerk_script()[2:])), "look up a and b"
            )
        assert result.final_output == "done"

        await _make_legacy(backend, "legacy-diverges")
        changed = _legacy_program(ScriptedModel([]), instructions="Something else.")
        with run_id("legacy-diverges"), pytest.raises(ReplayDivergenceError, match="call #1"):
            await backend.run(changed, "look up a and b")

    run_async(go())


# -- strings a database cannot hold -----------------------------------------------------------

ODD = "nul:\x00 lone:\ud800 low:\udfff é 漢"
ARGUMENT = "nul:\x00 é 漢"  # the SDK itself refuses a lone surrogate in a tool's arguments


def _raw_call(name: str, arguments: str, call_id: str) -> ResponseFunctionToolCall:
    """A tool call exactly as a model may send it: its arguments text taken verbatim."""
    return ResponseFunctionToolCall(
        type="function_call", name=name, arguments=arguments, call_id=call_id, id=f"fc-{call_id}"
    )


def _echo_agent(model: Any, seen: list[str]) -> Agent[Any]:
    @function_tool
    def echo(text: str) -> str:
        """Echo the text back, changed a little."""
        seen.append(text)
        return f"echo {text} {ODD} \udbff"

    return Agent(name="echoer", tools=[echo], model=model)


def test_nul_and_lone_surrogates_in_tool_arguments_and_outputs_round_trip(
    backend: DurableBackend,
) -> None:
    """Lone surrogates raised a raw UnicodeEncodeError (and, in a tool's output, left a
    PostgreSQL run running with its lease held); both databases must store them, and NUL,
    exactly."""
    seen: list[str] = []
    script = [
        [_raw_call("echo", json.dumps({"text": ARGUMENT}, ensure_ascii=False), "e1")],
        [assistant_message(f"said {ODD}")],
    ]

    async def go() -> None:
        with run_id("odd-strings"):
            first = await backend.run(_echo_agent(ScriptedModel(script), seen), "go")
        assert seen == [ARGUMENT]
        outputs = [i.output for i in first.new_items if isinstance(i, ToolCallOutputItem)]
        assert outputs == [f"echo {ARGUMENT} {ODD} \udbff"]
        record = await backend.get_run("odd-strings")
        assert (record.status, record.owner) == ("completed", None)
        assert record.final_output == {"json": f"said {ODD}"}
        with run_id("odd-strings"):  # a pure replay sees exactly what the live run saw
            again = await backend.run(_echo_agent(ScriptedModel([]), seen), "go")
        assert again.to_input_list() == first.to_input_list()
        assert again.final_output == first.final_output
        assert seen == [ARGUMENT]

    run_async(go())


@pytest.mark.parametrize("escaped", [True, False])
def test_surrogates_in_arguments_fail_the_run_as_the_sdk_does(
    backend: DurableBackend, escaped: bool
) -> None:
    """A lone surrogate in a tool's arguments, raw or JSON-escaped, is refused by the SDK itself
    (it hashes the call as UTF-8); the run must then end failed, with its error recorded and its
    lease given back, on both databases."""
    arguments = json.dumps({"text": ODD}, ensure_ascii=escaped)
    script = [[_raw_call("echo", arguments, "e1")], [assistant_message("never")]]
    rid = f"surrogate-arguments-{escaped}"
    with run_id(rid), pytest.raises(UnicodeEncodeError):
        backend.run_sync(_echo_agent(ScriptedModel(script), []), "go")
    record = run_async(backend.get_run(rid))
    assert (record.status, record.owner, record.error_type) == (
        "failed",
        None,
        "builtins.UnicodeEncodeError",
    )
    assert record.model_calls == 1  # the response itself was journaled


@pytest.mark.parametrize("bad", ["a\x00b", "lone \ud800", "x" * 201])
def test_a_run_id_neither_database_can_store_is_refused_before_anything_is_written(
    backend: DurableBackend, bad: str
) -> None:
    agent = Agent(name="a", model=ScriptedModel([[assistant_message("x")]]))
    before = {r.id for r in run_async(backend.list_runs(limit=1000))}
    with pytest.raises(ValueError, match="run id"), run_id(bad):
        backend.run_sync(agent, "go")
    assert {r.id for r in run_async(backend.list_runs(limit=1000))} == before


# A call site in a file another engineer owns; the marker goes once the call is there (issue #8).


@pytest.mark.parametrize("name", ["a\x00b", "lone \ud800", "n" * 501], ids=["nul", "lone", "long"])
def test_an_agent_name_neither_database_can_store_is_refused_before_anything_is_written(
    backend: DurableBackend, name: str
) -> None:
    agent = Agent(name=name, model=ScriptedModel([[assistant_message("x")]]))
    before = {r.id for r in run_async(backend.list_runs(limit=1000))}
    with run_id(f"agent-name-{len(name)}"), pytest.raises(ValueError, match="agent"):
        backend.run_sync(agent, "go")
    assert {r.id for r in run_async(backend.list_runs(limit=1000))} == before


@pytest.mark.parametrize("bad", ["a\x00b", "lone \ud800"], ids=["nul", "lone"])
def test_looking_up_an_unstorable_run_id_is_refused_the_same_on_both_databases(
    backend: DurableBackend, bad: str
) -> None:
    with pytest.raises(UnstorableNameError, match="run id"):
        run_async(backend.get_run(bad))


class _FailingHook(RunHooks[Any]):
    async def on_llm_start(self, *_: Any) -> None:
        raise ValueError(f"bad input: {ODD}")


def test_an_error_whose_text_holds_nul_or_a_surrogate_is_still_recorded(
    backend: DurableBackend,
) -> None:
    agent = Agent(name="failing", model=ScriptedModel([[assistant_message("x")]]))
    with run_id("odd-error"), pytest.raises(ValueError, match="bad input"):
        backend.run_sync(agent, "go", hooks=_FailingHook())
    record = run_async(backend.get_run("odd-error"))
    assert (record.status, record.owner, record.error_type) == (
        "failed",
        None,
        "builtins.ValueError",
    )
    assert record.error is not None
    assert record.error.startswith("bad input: nul:")


# -- errors of the journal itself ----------------------------------------------------------------


def test_a_lost_lease_in_a_tool_reaches_the_caller_as_itself(backend: DurableBackend) -> None:
    """It used to arrive wrapped in the SDK's UserError('Error running tool ...')."""
    rid = "lease-lost-in-tool"

    @function_tool
    async def grab() -> str:
        """Meanwhile, another process takes the run over."""
        await steal_lease(backend, rid)
        return "grabbed"

    model = ScriptedModel([[function_call("grab", {}, call_id="g1")], [assistant_message("x")]])
    with run_id(rid), pytest.raises(RunLeasedError) as info:
        backend.run_sync(Agent(name="grabber", tools=[grab], model=model), "go")
    assert not isinstance(info.value, UserError)
    record = run_async(backend.get_run(rid))
    assert (record.status, record.owner) == ("running", "elsewhere:1:other")


def test_a_database_error_in_a_tool_reaches_the_caller_as_itself(backend: DurableBackend) -> None:
    rid = "database-error-in-tool"

    @function_tool
    async def clash() -> str:
        """Meanwhile, the journal gets an entry under this very tool call's key."""
        await sql_call(
            backend,
            "INSERT INTO runplane_journal (run_id, seq, kind, key, fingerprint, payload, "
            "created_at) VALUES (:rid, 99, 'tool', '1:t1', NULL, '{}', 0)",
            rid=rid,
        )
        return "clashed"

    model = ScriptedModel([[function_call("clash", {}, call_id="t1")], [assistant_message("x")]])
    with run_id(rid), pytest.raises(DatabaseError) as info:
        backend.run_sync(Agent(name="clasher", tools=[clash], model=model), "go")
    assert not isinstance(info.value, UserError)


# -- payloads too large to store twice ---------------------------------------------------------

BIG = 2 * 1024 * 1024


def test_a_large_tool_output_is_stored_once_and_shown_in_full(backend: DurableBackend) -> None:
    big_argument = "a" * (BIG // 2)

    @function_tool
    def produce(seed: str) -> str:
        """Produce a lot."""
        return "o" * BIG

    model = ScriptedModel(
        [
            [function_call("produce", {"seed": big_argument}, call_id="p1")],
            [assistant_message("ok")],
        ]
    )
    with run_id("large-output"):
        backend.run_sync(Agent(name="producer", tools=[produce], model=model), "go")
    sizes = run_async(payload_chars(backend, "large-output"))
    # The output once; the arguments in the model's response and with the tool's output (where
    # a tool call resumed after an approval finds them). The event log holds previews.
    assert BIG + BIG <= sizes["journal"] < BIG + BIG + 64 * 1024
    assert sizes["events"] < 64 * 1024

    engine = backend.engine
    assert isinstance(engine, LocalEngine)
    show = CliRunner().invoke(build_app(), ["runs", "show", "large-output", "--db", engine.url])
    assert show.exit_code == 0, show.output
    text = show.stdout.replace("\n", "")
    assert "tool produce(" in text
    assert "-> " + "o" * 100 in text  # the output, read back from the journal, shortened
    assert len(text) < 16 * 1024  # previews, not megabytes
    shown = CliRunner().invoke(
        build_app(), ["runs", "show", "large-output", "--json", "--db", engine.url]
    )
    assert shown.exit_code == 0, shown.output
    steps = json.loads(shown.stdout)["steps"]
    tool_step = next(s["payload"] for s in steps if s["type"] == "tool_call")
    assert tool_step["output"] == {"json": "o" * BIG}
    assert json.loads(tool_step["arguments"]) == {"seed": big_argument}
    model_step = next(s["payload"] for s in steps if s["type"] == "model_call")
    assert json.loads(model_step["calls"][0]["arguments"]) == {"seed": big_argument}
    assert model_step["output"][0]["arguments"] == model_step["calls"][0]["arguments"]


# -- a lease lost while the run waited -----------------------------------------------------------


def _block(seconds: float) -> None:
    """Stall the whole event loop, heartbeat included, as a stopped or overloaded process does."""
    time.sleep(seconds)


class _StealBefore(RunHooks[Any]):
    """Before the chosen step, another process takes the run over while this one stalls."""

    def __init__(self, backend: DurableBackend, rid: str, *, llm_call: int = 0) -> None:
        self.backend = backend
        self.rid = rid
        self.llm_call = llm_call
        self.llm_calls = 0
        self.tool_starts = 0

    async def _steal(self, stall: Callable[[], Any]) -> None:
        await steal_lease(self.backend, self.rid)
        await stall()

    async def on_llm_start(self, context: Any, agent: Any, *_: Any) -> None:
        self.llm_calls += 1
        if self.llm_call and self.llm_calls == self.llm_call:
            # The heartbeat finds the run taken over: this process knows it lost the lease.
            await self._steal(lambda: asyncio.sleep(self.backend.lease_seconds))

    async def on_tool_start(self, context: RunContextWrapper[Any], agent: Any, tool: Any) -> None:
        self.tool_starts += 1
        if not self.llm_call:
            # The event loop stalls past the lease: this process cannot know it still holds it.
            async def stall() -> None:
                _block(self.backend.lease_seconds)

            await self._steal(stall)


def test_a_stale_holder_does_not_call_the_model_again(db_url: str) -> None:
    backend = DurableBackend(LocalEngine(db_url), lease_seconds=0.3)
    rid = "stale-before-model"
    model = ScriptedModel(
        [[function_call("noop", {}, call_id="n1")], [assistant_message("never asked")]]
    )

    @function_tool
    def noop() -> str:
        """Nothing."""
        return "ok"

    hooks = _StealBefore(backend, rid, llm_call=2)
    with run_id(rid), pytest.raises(RunLeasedError):
        backend.run_sync(Agent(name="stale", tools=[noop], model=model), "go", hooks=hooks)
    assert hooks.llm_calls == 2
    assert model.remaining_steps == 1  # the second model call never went out


def test_a_stale_holder_does_not_run_a_tool_live(db_url: str) -> None:
    backend = DurableBackend(LocalEngine(db_url), lease_seconds=0.3)
    rid = "stale-before-tool"
    ran: list[str] = []

    @function_tool
    def effect() -> str:
        """A side effect the new holder will also perform."""
        ran.append("effect")
        return "ok"

    model = ScriptedModel([ModelStep(output=[function_call("effect", {}, call_id="f1")])])
    hooks = _StealBefore(backend, rid)
    with run_id(rid), pytest.raises(RunLeasedError):
        backend.run_sync(Agent(name="stale", tools=[effect], model=model), "go", hooks=hooks)
    assert hooks.tool_starts == 1
    assert ran == []
