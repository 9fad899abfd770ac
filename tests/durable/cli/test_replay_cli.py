"""`runplane runs replay` and `runplane runs fork`, and `Runner.fork`: embedded (SQLite and
PostgreSQL) and through a real `runplane server`.

Runs are recorded live by the durable backend with the agents of `support.replay_agents`, whose
counters say how many real model calls and tool executions happened: a replay must make none,
a fork only those of its steps from the fork's step on.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runplane_durable import DurableBackend, LocalEngine, Runner, run_id
from runplane_durable.engine import open_engine
from runplane_durable.records import RunSpec
from runplane_durable.worker.known import KnownAgents
from runplane_durable.worker.loop import Worker
from support import replay_agents as ra
from support.durable import run_async, sqlite_url
from support.durable_server import Server, running_server
from typer.testing import CliRunner

from runplane.cli import build_app

REF = "support.replay_agents:"
FINAL = "weather: Paris: 15 C; Oslo: 12 C; Lima: 12 C"
# The events of a recorded run of `ra.agent`, by seq: what `runs show` numbers.
MODEL_STEPS = (2, 4, 6, 8)
TOOL_STEPS = (3, 5, 7)
LAST_STEP = 10


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def record(url: str, rid: str, agent: Any = None, **options: Any) -> Any:
    """Run `agent` (default `ra.agent`) live under `rid` on `url`; its final output."""

    async def go() -> Any:
        backend = DurableBackend(open_engine(url))
        try:
            with run_id(rid):
                result = await backend.run(agent or ra.agent, ra.PROMPT, **options)
            return result.final_output
        finally:
            await backend.engine.dispose()

    return run_async(go())


def stored(url: str, rid: str) -> tuple[Any, ...]:
    """Everything the engine holds for run `rid`: its record, journal and events."""

    async def go() -> tuple[Any, ...]:
        engine = open_engine(url, read_only=True)
        try:
            return (
                await engine.get_run(rid),
                await engine.read_journal(rid),
                await engine.list_events(rid),
            )
        finally:
            await engine.dispose()

    return run_async(go())


def sqlite_dump(url: str) -> list[str]:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def counted() -> Iterator[Any]:
    ra.CALLS.clear()
    yield ra.CALLS
    ra.CALLS.clear()


# -- replay ----------------------------------------------------------------------------------------


def test_replaying_an_unchanged_program_calls_nothing_writes_nothing_and_says_same(
    db_url: str, counted: Any
) -> None:
    rid = f"same-{id(counted)}"
    assert record(db_url, rid) == FINAL
    assert counted == {"model": 4, "lookup": 3}
    counted.clear()
    before = stored(db_url, rid)
    dump = sqlite_dump(db_url) if db_url.startswith("sqlite") else None
    where = ["--db", db_url]
    result = cli("runs", "replay", rid, *where)
    assert result.exit_code == 0, result.output
    assert "replayed 7 steps, same as recorded" in result.stdout
    assert FINAL in result.stdout
    assert counted == {}  # no model call, no tool
    assert stored(db_url, rid) == before
    if dump is not None:
        assert sqlite_dump(db_url) == dump


def test_replay_json_says_what_it_compared(url: str, counted: Any) -> None:
    record(url, "j")
    result = cli("runs", "replay", "j", "--db", url, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["same"] is True
    assert (data["model_calls"], data["tool_outputs"], data["steps"]) == (4, 3, 7)
    assert data["divergence"] is None
    assert data["final_output"] == data["recorded_output"]


@pytest.mark.parametrize(
    ("variant", "step", "says"),
    [
        ("other_instructions", 2, "what changed: the instructions"),
        ("other_tool", 2, "what changed: tool 'lookup' (its description or parameter schema)"),
        ("more_tools", 2, "what changed: tool 'extra' (added)"),
        ("renamed", 2, "what changed: the agent"),
        # the code stops at the first tool: the record's model call #2 is never asked for
        ("first_tool_only", 4, "no model call: the run ended before it"),
    ],
)
def test_a_changed_program_diverges_at_the_first_step_it_changed(
    url: str, counted: Any, variant: str, step: int, says: str
) -> None:
    record(url, "changed")
    counted.clear()
    dump = sqlite_dump(url)
    result = cli("runs", "replay", "changed", "--db", url, "--agent", REF + variant)
    assert result.exit_code == 1, result.output
    assert f"diverged at step {step} (model call #{MODEL_STEPS.index(step) + 1})" in result.stdout
    assert says in result.stdout
    assert counted == {}
    assert sqlite_dump(url) == dump
    data = json.loads(
        cli("runs", "replay", "changed", "--db", url, "--agent", REF + variant, "--json").stdout
    )
    assert data["same"] is False
    assert data["divergence"]["step"] == step


def test_a_changed_model_script_is_never_asked(url: str, counted: Any) -> None:
    record(url, "script")
    counted.clear()
    result = cli("runs", "replay", "script", "--db", url, "--agent", REF + "other_script")
    assert result.exit_code == 0, result.output
    assert "same as recorded" in result.stdout
    assert counted == {}


def test_a_failed_run_replays_to_the_same_failure(url: str, counted: Any) -> None:
    with pytest.raises(Exception, match="Max turns"):
        record(url, "short", max_turns=2)
    counted.clear()
    result = cli("runs", "replay", "short", "--db", url)
    assert result.exit_code == 0, result.output
    assert "it failed as recorded" in result.stdout
    assert "MaxTurnsExceeded" in result.stdout
    assert counted == {}


def test_an_unfinished_run_replays_to_the_end_of_its_record(url: str, counted: Any) -> None:
    """A run stopped after step 5 (its fork queued, never run) replays what it holds."""
    record(url, "full")
    assert cli("runs", "fork", "full", "--at", "5", "--run-id", "part", "--db", url).exit_code == 0
    counted.clear()
    result = cli("runs", "replay", "part", "--db", url)
    assert result.exit_code == 0, result.output
    assert "replayed 3 steps, same as recorded; the record ends there" in result.stdout
    assert counted == {}


def test_replay_through_a_server_reads_the_same_and_writes_nothing(
    tmp_path: Path, counted: Any
) -> None:
    url = sqlite_url(tmp_path)
    record(url, "served")
    counted.clear()
    dump = sqlite_dump(url)
    with running_server(url, tmp_path / "server.log") as server:
        same = cli("runs", "replay", "served", "--server", server.url)
        changed = cli(
            "runs", "replay", "served", "--server", server.url, "--agent", REF + "other_tool"
        )
    assert same.exit_code == 0, same.output
    assert "same as recorded" in same.stdout
    assert changed.exit_code == 1, changed.output
    assert "diverged at step 2" in changed.stdout
    assert counted == {}
    assert sqlite_dump(url) == dump


def _conversation(url: str, session_path: Path, turns: int, limit: int | None = None) -> list[str]:
    """Record `turns` runs of `ra.agent` on one SQLiteSession (`turn-1`, `turn-2`, ...): each
    turn after the first starts from the history the earlier ones saved there (its latest
    `limit` items, when given: the session's own settings)."""
    from agents import SQLiteSession
    from agents.memory import SessionSettings

    settings = SessionSettings(limit=limit) if limit is not None else None
    session = SQLiteSession("chat", str(session_path), session_settings=settings)
    try:
        return [record(url, f"turn-{n}", session=session) for n in range(1, turns + 1)]
    finally:
        session.close()


@pytest.mark.parametrize("limit", [None, 7])
def test_a_later_turn_of_a_conversation_replays_the_same_and_touches_no_session(
    tmp_path: Path, counted: Any, limit: int | None
) -> None:
    """Also when the session's own settings read only its latest items: the replay, which has
    not that session, reads as the record says the run did."""
    url, chat = sqlite_url(tmp_path), tmp_path / "chat.db"
    outputs = _conversation(url, chat, 2, limit)
    assert outputs[0] == FINAL
    counted.clear()
    dump, history = sqlite_dump(url), sqlite_dump(f"sqlite:///{chat}")
    journal = stored(url, "turn-2")[1]
    assert any(e.kind == "session" for e in journal)  # it read turn 1's items, and wrote its own
    for turn in ("turn-1", "turn-2"):
        result = cli("runs", "replay", turn, "--db", url)
        assert result.exit_code == 0, result.output
        assert "same as recorded; the final output is the same" in result.stdout
    # a changed program is still seen, at the model call the history reaches
    changed = cli("runs", "replay", "turn-2", "--db", url, "--agent", REF + "other_instructions")
    assert changed.exit_code == 1, changed.output
    assert "what changed: the instructions" in changed.stdout
    assert counted == {}
    assert sqlite_dump(url) == dump  # nothing written to the runs' database
    assert sqlite_dump(f"sqlite:///{chat}") == history  # nor to the session


def test_a_conversation_turn_replays_the_same_through_a_server(
    tmp_path: Path, counted: Any
) -> None:
    url = sqlite_url(tmp_path)
    _conversation(url, tmp_path / "chat.db", 2)
    counted.clear()
    dump = sqlite_dump(url)
    with running_server(url, tmp_path / "server.log") as server:
        result = cli("runs", "replay", "turn-2", "--server", server.url, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["same"] is True
    assert counted == {}
    assert sqlite_dump(url) == dump


def test_a_run_with_a_session_that_waited_for_approval_replays_both_stretches(
    tmp_path: Path, counted: Any
) -> None:
    """Resumed from its approval snapshot, the run read and wrote its session anew (steps of
    their own stretch): the replay answers each stretch from its own steps."""
    from agents import SQLiteSession
    from runplane_durable.runtime.runner import resume_run

    url, chat = sqlite_url(tmp_path), tmp_path / "chat.db"
    session = SQLiteSession("chat", str(chat))

    async def go() -> Any:
        # an earlier turn: history for the paying turn to read
        await session.add_items([{"role": "user", "content": "hi"}])
        backend = DurableBackend(LocalEngine(url))
        try:
            with run_id("pay"):
                assert (await backend.run(ra.payer, "pay", session=session)).interruptions
            await backend.engine.decide("pay", "p1", approve=True)
            record_ = await backend.get_run("pay")
            return await resume_run(backend, record_, ra.payer, session=session)
        finally:
            await backend.engine.dispose()

    try:
        assert run_async(go()).final_output == "done: paid 5"
    finally:
        session.close()
    journal = stored(url, "pay")[1]
    assert {e.payload.get("segment", 0) for e in journal if e.kind == "session"} == {0, 1}
    counted.clear()
    dump, history = sqlite_dump(url), sqlite_dump(f"sqlite:///{chat}")
    result = cli("runs", "replay", "pay", "--db", url)
    assert result.exit_code == 0, result.output
    assert "same as recorded; the final output is the same: done: paid 5" in result.stdout
    assert counted == {}
    assert (sqlite_dump(url), sqlite_dump(f"sqlite:///{chat}")) == (dump, history)


def test_a_session_step_the_code_makes_differently_is_a_divergence_named_so() -> None:
    from runplane_durable.errors import ReplayDivergenceError
    from runplane_durable.runtime.replay import _diverged

    changed = ReplayDivergenceError(
        run_id="r",
        kind="session",
        step=2,
        requested="a write of 3 item(s) to the session",
        recorded="a write of 2 item(s) to the session",
        what_changed="The run reads or writes its session differently than it did.",
    )
    found = _diverged(changed, True, {}, [])
    assert found is not None
    assert found.describe() == (
        "diverged at session step #2\n"
        "  the record: a write of 2 item(s) to the session\n"
        "  the code:   a write of 3 item(s) to the session\n"
        "  what changed: The run reads or writes its session differently than it did."
    )
    extra = ReplayDivergenceError(
        run_id="r",
        kind="session",
        step=4,
        requested="a pop of the session's last item",
        what_changed="The finished run never made this session step.",
    )
    beyond = _diverged(extra, True, {}, [])
    assert beyond is not None
    assert beyond.recorded == "no such step: the recorded run never made it"
    assert _diverged(extra, False, {}, []) is None  # an unfinished run's record ends there


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope"], "no run 'nope'"),
        (["rec", "--agent", REF + "nobody"], "has no attribute 'nobody'"),
        (["rec", "--agent", "no_such_module_here:agent"], "no module named"),
        (["rec", "--agent", REF + "not_an_agent"], "is a str, not an agents.Agent"),
    ],
)
def test_what_cannot_be_replayed_is_refused_with_exit_2(
    url: str, args: list[str], says: str
) -> None:
    record(url, "rec")
    result = cli("runs", "replay", *args, "--db", url)
    assert result.exit_code == 2, result.output
    assert says in result.stderr


def test_a_run_without_a_journal_or_an_agent_ref_cannot_be_replayed(url: str) -> None:
    async def write() -> None:
        engine = LocalEngine(url)
        try:
            await engine.enqueue_run(
                RunSpec("queued", "weather", {"text": "hi"}, "fp", {"mode": "start"})
            )
        finally:
            await engine.dispose()

    run_async(write())
    result = cli("runs", "replay", "queued", "--db", url)
    assert result.exit_code == 2
    assert "has no agent reference" in result.stderr
    assert "--agent MODULE:ATTR" in result.stderr
    result = cli("runs", "replay", "queued", "--db", url, "--agent", REF + "agent")
    assert result.exit_code == 2
    assert "has no journal to replay" in result.stderr


def test_replay_of_a_missing_database_is_refused_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = cli("runs", "replay", "x", "--db", str(missing))
    assert result.exit_code != 0
    assert not missing.exists()


# -- fork ------------------------------------------------------------------------------------------


def _live_after(at: int) -> dict[str, int]:
    """The real calls a fork at step `at` makes: every step from `at` on."""
    live = {
        "model": sum(1 for s in MODEL_STEPS if s >= at),
        "lookup": sum(1 for s in TOOL_STEPS if s >= at),
    }
    return {k: v for k, v in live.items() if v}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, tuple[Any, ...]]:
    url = sqlite_url(tmp_path_factory.mktemp("fork"))
    assert record(url, "orig") == FINAL
    return url, stored(url, "orig")


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(at=st.integers(min_value=1, max_value=LAST_STEP))
def test_a_fork_here_executes_only_the_steps_from_its_step_on(
    recorded: tuple[str, tuple[Any, ...]], at: int
) -> None:
    url, original = recorded
    ra.CALLS.clear()
    new = f"fork-{at}-{uuid.uuid4().hex[:8]}"
    result = cli("runs", "fork", "orig", "--at", str(at), "--here", "--run-id", new, "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == FINAL
    assert dict(ra.CALLS) == _live_after(at)
    assert stored(url, "orig") == original  # the run forked is untouched
    fork, journal, events = stored(url, new)
    assert fork.status == "completed"
    assert fork.options["forked_from"] == {"run_id": "orig", "at": at}
    assert events[0].type == "run_forked"
    shared = events[0].payload
    assert shared["model_calls"] == sum(1 for s in MODEL_STEPS if s < at)
    assert shared["tool_outputs"] == sum(1 for s in TOOL_STEPS if s < at)
    # the fork's journal is the original's: the shared part copied, the rest made again alike
    assert [(e.kind, e.key, e.fingerprint) for e in journal] == [
        (e.kind, e.key, e.fingerprint) for e in original[1]
    ]
    assert fork.model_calls == _live_after(at).get("model", 0)  # its own calls only


def test_a_fork_is_queued_for_a_worker_that_knows_the_agent(url: str, counted: Any) -> None:
    record(url, "orig")
    counted.clear()
    result = cli("runs", "fork", "orig", "--at", "6", "--run-id", "queued-fork", "--db", url)
    assert result.exit_code == 0, result.output
    assert "queued on default" in result.stdout
    fork = stored(url, "queued-fork")[0]
    assert (fork.status, fork.queue, fork.agent_ref) == ("queued", "default", REF + "agent")
    assert counted == {}
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(
        build_app(), ["runs", "show", "queued-fork", "--db", url]
    )
    assert "forked from run orig at step 6: 2 model calls and 2 tool outputs shared" in (
        shown.stdout
    )

    async def work() -> None:
        import asyncio

        engine = LocalEngine(url)
        stop = asyncio.Event()
        worker = Worker(engine, KnownAgents.load([REF + "agent"]), poll=0.05)
        task = asyncio.ensure_future(worker.run(stop))
        try:
            for _ in range(600):
                if (await engine.get_run("queued-fork")).status == "completed":
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
            await engine.dispose()

    run_async(work())
    fork = stored(url, "queued-fork")[0]
    assert fork.status == "completed"
    assert fork.final_output == {"json": FINAL}
    assert counted == {"model": 2, "lookup": 1}  # model calls #3, #4 and the third lookup


def test_forking_the_same_fork_again_is_that_fork(url: str) -> None:
    record(url, "orig")
    assert cli("runs", "fork", "orig", "--at", "4", "--run-id", "f", "--db", url).exit_code == 0
    again = cli("runs", "fork", "orig", "--at", "4", "--run-id", "f", "--db", url)
    assert again.exit_code == 0, again.output
    other = cli("runs", "fork", "orig", "--at", "5", "--run-id", "f", "--db", url)
    assert other.exit_code == 2
    assert "exists already and is not that fork" in other.stderr
    taken = cli("runs", "fork", "orig", "--at", "4", "--run-id", "orig", "--db", url)
    assert taken.exit_code == 2
    assert "exists already" in taken.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["orig", "--at", "0"], "steps start at 1"),
        (["orig", "--at", "x"], "'x' is not a step number"),
        (["orig", "--at", "2.5"], "'2.5' is not a step number"),
        (["orig", "--at", "11"], "has steps 1 to 10"),
        (["nope", "--at", "1"], "no run 'nope'"),
        (["orig", "--at", "3", "--here", "--agent", REF + "nobody"], "has no attribute"),
        (["orig", "--at", "3", "--here", "--queue", "q"], "give one of the two"),
        (["orig", "--at", "3", "--agent", REF + "agent"], "--agent is for --here"),
        (["orig", "--at", "3", "--run-id", "a\x00b"], "--run-id"),
    ],
)
def test_a_fork_that_cannot_be_made_is_refused_with_exit_2_and_writes_nothing(
    url: str, args: list[str], says: str
) -> None:
    record(url, "orig")
    dump = sqlite_dump(url)
    result = cli("runs", "fork", *args, "--db", url)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert sqlite_dump(url) == dump


def test_fork_through_a_server(tmp_path: Path, counted: Any) -> None:
    url = sqlite_url(tmp_path)
    record(url, "orig")
    before = stored(url, "orig")
    counted.clear()
    with running_server(url, tmp_path / "server.log") as server:
        where = ["--server", server.url]
        here = cli("runs", "fork", "orig", "--at", "7", "--here", "--run-id", "h", *where)
        queued = cli("runs", "fork", "orig", "--at", "2", "--run-id", "q", *where)
        bad = cli("runs", "fork", "orig", "--at", "99", *where)
        replayed = cli("runs", "replay", "h", *where)
    assert here.exit_code == 0, here.output
    assert here.stdout.strip() == FINAL
    assert counted == {"model": 1, "lookup": 1}
    assert queued.exit_code == 0, queued.output
    assert stored(url, "q")[0].status == "queued"
    assert bad.exit_code == 2
    assert "has steps 1 to 10" in bad.stderr
    assert replayed.exit_code == 0, replayed.output
    assert stored(url, "orig") == before


def _conversation_refused(output: str) -> None:
    assert "run 'turn-2' used a session=" in output
    assert "a run with a session cannot be forked" in output
    assert "runplane runs replay turn-2" in output


@pytest.mark.parametrize("at", ["1", "2", "4"])
def test_a_run_that_used_a_session_is_not_forked_and_nothing_is_written(
    tmp_path: Path, counted: Any, at: str
) -> None:
    """Its shared model calls were asked the session's history, which a fork run on a worker
    or --here (without that session) would not have: refused at any step, exit 2."""
    url = sqlite_url(tmp_path)
    _conversation(url, tmp_path / "chat.db", 2)
    counted.clear()
    dump = sqlite_dump(url)
    for extra in ([], ["--here"]):
        result = cli("runs", "fork", "turn-2", "--at", at, "--run-id", "f", *extra, "--db", url)
        assert result.exit_code == 2, result.output
        _conversation_refused(result.stderr)
    bad_step = cli("runs", "fork", "turn-2", "--at", "99", "--db", url)
    assert bad_step.exit_code == 2
    assert "has steps 1 to" in bad_step.stderr  # a step it lacks is still named as that
    assert counted == {}
    assert sqlite_dump(url) == dump


def test_a_run_that_used_a_session_is_not_forked_through_a_server(
    tmp_path: Path, counted: Any
) -> None:
    import urllib.error
    import urllib.request

    url = sqlite_url(tmp_path)
    _conversation(url, tmp_path / "chat.db", 2)
    counted.clear()
    dump = sqlite_dump(url)
    with running_server(url, tmp_path / "server.log") as server:
        result = cli("runs", "fork", "turn-2", "--at", "2", "--here", "--server", server.url)
        request = urllib.request.Request(
            f"{server.url}/api/v1/runs/turn-2/fork",
            data=json.dumps({"at": 2, "run_id": "f"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=30)
    assert result.exit_code == 2, result.output
    _conversation_refused(result.stderr)
    assert answered.value.code == 409
    body = json.loads(answered.value.read())["error"]
    assert body["code"] == "fork_session"
    steps = sum(1 for e in stored(url, "turn-2")[1] if e.kind == "session")
    assert steps == 3  # the history read, the prompt written, the answer written
    assert body["fields"] == {"run_id": "turn-2", "session_steps": steps}
    assert counted == {}
    assert sqlite_dump(url) == dump


@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_runner_fork_of_a_run_that_used_a_session_raises_fork_session_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from runplane_durable import ForkSessionError

    url = sqlite_url(tmp_path)
    _conversation(url, tmp_path / "chat.db", 2)

    async def go(backend: DurableBackend) -> None:
        monkeypatch.setattr(Runner, "durable", classmethod(lambda cls: backend))
        try:
            with pytest.raises(ForkSessionError) as refused:
                await Runner.fork("turn-2", at=2, run_id="f", queue=None)
            assert (refused.value.run_id, refused.value.session_steps) == ("turn-2", 3)
            assert isinstance(refused.value, ValueError)
            assert not [r for r in await backend.engine.list_runs() if r.id == "f"]
        finally:
            await backend.engine.dispose()

    if mode == "embedded":
        run_async(go(DurableBackend(LocalEngine(url))))
    else:
        with running_server(url, tmp_path / "server.log") as server:
            run_async(go(_served(server)))


def _served(server: Server) -> DurableBackend:
    return DurableBackend(open_engine(server.url))


@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_runner_fork_returns_a_handle_and_resume_runs_it_here(
    tmp_path: Path, counted: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    url = sqlite_url(tmp_path)
    record(url, "orig")
    counted.clear()

    async def go(backend: DurableBackend) -> None:
        monkeypatch.setattr(Runner, "durable", classmethod(lambda cls: backend))
        try:
            handle = await Runner.fork("orig", at=8, run_id="api-fork", agent=ra.agent)
            assert await handle.status() == "queued"
            record_ = await handle.get_run()
            assert record_.options["forked_from"] == {"run_id": "orig", "at": 8}
            here = await Runner.fork("orig", at=3, queue=None)
            assert (await here.get_run()).queue is None
            result = await Runner.resume(here.run_id, ra.agent)
            assert result.final_output == FINAL
        finally:
            await backend.engine.dispose()

    if mode == "embedded":
        run_async(go(DurableBackend(LocalEngine(url))))
    else:
        with running_server(url, tmp_path / "server.log") as server:
            run_async(go(_served(server)))
    # at=3: the first lookup and everything after it run live
    assert counted == {"model": 3, "lookup": 3}


def test_a_streamed_run_replays_the_same(url: str, counted: Any) -> None:
    async def go() -> None:
        backend = DurableBackend(LocalEngine(url))
        try:
            with run_id("streamed"):
                result = backend.run_streamed(ra.agent, ra.PROMPT)
            async for _ in result.stream_events():
                pass
            assert result.final_output == FINAL
        finally:
            await backend.engine.dispose()

    run_async(go())
    counted.clear()
    result = cli("runs", "replay", "streamed", "--db", url)
    assert result.exit_code == 0, result.output
    assert "replayed 7 steps, same as recorded" in result.stdout
    assert counted == {}


@pytest.mark.parametrize(
    ("variant", "final", "note"),
    [
        ("payer", "done: paid 5", None),
        (
            "payer_twice",
            "done: paid 5, paid 7",
            "model call #2 and the tools between the stops were not compared",
        ),
    ],
)
def test_a_run_that_waited_for_approval_replays_before_and_after_the_stop(
    url: str, counted: Any, variant: str, final: str, note: str | None
) -> None:
    from runplane_durable.runtime.runner import resume_run

    agent = getattr(ra, variant)
    record(url, "pay", agent=agent)
    stopped = cli("runs", "replay", "pay", "--db", url)
    assert stopped.exit_code == 0, stopped.output
    assert "it stops for approval of pay, as recorded" in stopped.stdout

    async def resume() -> Any:
        backend = DurableBackend(LocalEngine(url))
        try:
            return await resume_run(backend, await backend.get_run("pay"), agent)
        finally:
            await backend.engine.dispose()

    while True:  # approve each stop, then let the run go on
        assert cli("runs", "approve", "pay", "--db", url).exit_code == 0
        result = run_async(resume())
        if not result.interruptions:
            break
    assert result.final_output == final
    counted.clear()
    done = cli("runs", "replay", "pay", "--db", url)
    assert done.exit_code == 0, done.output
    assert f"same as recorded; the final output is the same: {final}" in done.stdout
    if note is not None:
        assert note in done.stdout
    assert counted == {}  # the approved tools did not run again, nor the model


def test_the_web_ui_shows_where_a_fork_came_from() -> None:
    from runplane_durable.events import RunForked, parse
    from runplane_durable.records import EventRecord
    from runplane_durable.server.ui_views import item_of

    forked = RunForked(from_run="orig", at=6, model_calls=2, tool_outputs=2)
    stored_event = EventRecord("f", 1, forked.TYPE, forked.to_payload(), 1.0)
    item = item_of(stored_event, parse(stored_event), None)
    assert item.title == "forked from orig at step 6"
    assert item.chips == ["2 model calls, 2 tool outputs shared"]


def test_a_fork_asks_again_for_an_approval_its_shared_part_needed(url: str, counted: Any) -> None:
    from runplane_durable.runtime.runner import resume_run

    async def go() -> None:
        backend = DurableBackend(LocalEngine(url))
        try:
            with run_id("paid"):
                assert (await backend.run(ra.payer, "pay")).interruptions
            await backend.engine.decide("paid", "p1", approve=True)
            done = await resume_run(backend, await backend.get_run("paid"), ra.payer)
            assert done.final_output == "done: paid 5"
            counted.clear()
            # forked after the model call that asked for `pay`: the model is not asked again,
            # and the call waits for a decision of its own
            events = await backend.engine.list_events("paid")
            tool_step = next(e.seq for e in events if e.type == "tool_call")
            fork = await backend.engine.fork_run(
                "paid", at=tool_step, new_run_id="paid-fork", queue=None
            )
            again = await resume_run(backend, fork, ra.payer)
            assert [i.call_id for i in again.interruptions] == ["p1"]
            assert (await backend.get_run("paid-fork")).status == "awaiting_approval"
            assert counted == {}
        finally:
            await backend.engine.dispose()

    run_async(go())
