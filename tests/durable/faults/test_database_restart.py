"""PostgreSQL crashed (`pg_ctl -m immediate stop`) in the middle of runs and started again: the
runs wait for it and go on, embedded and behind a `runplane server`, with every journal entry
and event exactly once; and a database down past RUNPLANE_DATABASE_RETRY_SECONDS fails the run
saying what to do, resumable by its id once the database is back.

Each test has a cluster of its own (`private_pg`): the shared one is never stopped.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DatabaseError, DurableBackend, LocalEngine, run_id
from support.durable import run_async
from support.durable_server import Server, server_env
from support.private_pg import PrivatePostgres
from support.steady_runs import check_runs, finish, journal_counts, start, wait_for

RUNS, TURNS = 4, 12
OUTAGE = 1.5  # seconds the database is down


def _rows(url: str) -> int:
    return sum(journal_counts(url).values())


def _crash_mid_runs(
    private_pg: PrivatePostgres, tmp_path: Path, env: dict[str, str], prefix: str
) -> str:
    """Start the program, crash the database once runs are well under way, start it again
    OUTAGE seconds later; the program's stderr."""
    proc = start(tmp_path, env, runs=RUNS, turns=TURNS, prefix=prefix)
    try:
        url = private_pg.url
        wait_for("runs under way", lambda: _rows(url) >= RUNS * 6, [proc])
        private_pg.crash()
        crashed = time.monotonic()
        time.sleep(OUTAGE)
        assert proc.poll() is None, proc.communicate()  # it waits, it does not fail
        private_pg.start()
        started = time.monotonic()
        before = _rows(url)
        if proc.poll() is None:
            wait_for("a step after the restart", lambda: _rows(url) > before, [proc])
            print(
                f"\nfigure: database down {started - crashed:.2f} s; the runs' next step "
                f"committed {time.monotonic() - started:.2f} s after it was back"
            )
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return finish(proc, tmp_path, runs=RUNS, turns=TURNS, prefix=prefix)


def _embedded_env(url: str) -> dict[str, str]:
    env = {**os.environ, "RUNPLANE_DATABASE_URL": url, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    env.pop("RUNPLANE_SERVER_URL", None)
    env.pop("RUNPLANE_DATABASE_RETRY_SECONDS", None)
    return env


@pytest.mark.slow
def test_runs_wait_for_a_crashed_database_and_go_on_embedded(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    err = _crash_mid_runs(private_pg, tmp_path, _embedded_env(private_pg.url), "embedded")
    assert "cannot be reached" in err  # it said it waits, and for how long
    assert "RUNPLANE_DATABASE_RETRY_SECONDS" in err
    assert "answers again" in err
    check_runs(private_pg.url, "embedded", runs=RUNS, turns=TURNS)


@pytest.mark.slow
def test_runs_wait_for_a_crashed_database_and_go_on_behind_a_server(
    private_pg: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's own wait for its database (0.5 s here) is shorter than the outage, so it
    answers 503 with Retry-After meanwhile, and its clients ask again."""
    monkeypatch.setenv("RUNPLANE_DATABASE_RETRY_SECONDS", "0.5")
    server = Server(private_pg.url, tmp_path / "server.log")
    server.start()
    try:
        err = _crash_mid_runs(private_pg, tmp_path, server_env(server.url), "served")
    finally:
        server.stop()
    assert "did not answer (HTTP 503" in err, err  # the program saw the 503s and asked again
    check_runs(private_pg.url, "served", runs=RUNS, turns=TURNS)


def _two_turns(calls: list[int], crash: PrivatePostgres | None) -> Agent[Any]:
    """Two tool calls then an answer; with `crash`, the database crashes in the second tool."""

    @function_tool
    def step(n: int) -> str:
        calls.append(n)
        if n == 1 and crash is not None:
            crash.crash()  # and it stays down
        return f"s{n}"

    script = [[function_call("step", {"n": n}, call_id=f"c{n}")] for n in range(2)]
    return Agent(
        name="down", tools=[step], model=ScriptedModel([*script, [assistant_message("done")]])
    )


def test_a_database_down_past_the_bound_fails_the_run_saying_what_to_do_and_it_resumes(
    private_pg: PrivatePostgres,
) -> None:
    backend = DurableBackend(LocalEngine(private_pg.url, retry_seconds=1.0))
    calls: list[int] = []
    began = time.monotonic()
    with run_id("down"), pytest.raises(DatabaseError) as info:
        backend.run_sync(_two_turns(calls, private_pg), "x")
    waited = time.monotonic() - began
    message = str(info.value)
    assert "cannot reach the database" in message
    assert "RUNPLANE_DATABASE_RETRY_SECONDS" in message
    assert "run the same run id again to resume" in message
    assert waited < 60  # bounded: it did not wait RUNPLANE_DB_TIMEOUT or forever
    assert calls == [0, 1]

    private_pg.start()
    with run_id("down"):  # the same id resumes: step 0 came from the journal
        resumed = Agent(
            name="down",
            tools=_two_turns(calls, None).tools,
            model=ScriptedModel([[assistant_message("done")]]),
        )
        assert backend.run_sync(resumed, "x").final_output == "done"
    assert calls == [0, 1, 1]  # the step in flight at the outage ran again: at least once

    async def stored() -> tuple[list[tuple[str, str]], list[str]]:
        journal = await backend.engine.read_journal("down")
        events = await backend.engine.list_events("down")
        await backend.engine.dispose()
        return [(r.kind, r.key) for r in journal], [e.type for e in events]

    journal, types = run_async(stored())
    keys = ["0", "1:c0", "1", "2:c1", "2"]
    assert journal == [("tool" if ":" in k else "model", k) for k in keys]
    assert types.count("model_call") == 3
    assert types.count("tool_call") == 2
    assert types[-1] == "run_completed"


def test_a_server_whose_database_stays_down_answers_503_and_the_program_fails_saying_so(
    private_pg: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPLANE_DATABASE_RETRY_SECONDS", "0.5")
    with_server = Server(private_pg.url, tmp_path / "server.log")
    with_server.start()
    try:
        import httpx

        private_pg.crash()
        answer = httpx.get(f"{with_server.url}/api/v1/runs", timeout=30)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["code"] == "database"
        assert "RUNPLANE_DATABASE_RETRY_SECONDS" in answer.json()["error"]["message"]

        from runplane_durable import RemoteEngine

        async def go() -> None:
            engine = RemoteEngine(with_server.url, retry_seconds=2.0)
            try:
                with pytest.raises(DatabaseError, match="cannot reach the database"):
                    await engine.list_runs()
            finally:
                await engine.dispose()

        began = time.monotonic()
        asyncio.run(go())
        # It asked again first: backoff 0.05 s doubling, until the next wait would pass 2 s.
        assert time.monotonic() - began >= 1.5
    finally:
        with_server.stop()


@pytest.mark.parametrize("raw", ["soon", "-1", "nan"])
def test_a_retry_setting_that_does_not_parse_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str
) -> None:
    monkeypatch.setenv("RUNPLANE_DATABASE_RETRY_SECONDS", raw)
    with pytest.raises(DatabaseError, match="RUNPLANE_DATABASE_RETRY_SECONDS") as info:
        LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}")
    assert "number of seconds of 0 or more" in str(info.value)
    with pytest.raises(ValueError, match="retry_seconds must be 0 or more"):
        LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}", retry_seconds=-1)
