"""The run database under faults: threads and loops, a fresh database raced by many starters, a
database from a newer version, a full disk, a dropped connection, load beyond the pool, lease
loss noticed before calling out, and settings that do not parse. Each on both databases where
the fault exists on both; each bounded in count and time."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import (
    DatabaseError,
    DurableBackend,
    LocalEngine,
    RunInputMismatchError,
    RunLeasedError,
    SchemaVersionError,
    run_id,
)
from runplane_durable.records import RunSpec
from support.durable import (
    PG_ADMIN_URL,
    fresh_pg_database,
    run_async,
    sqlite_url,
)

DEADLINE = 90.0  # seconds any one scenario may take before it counts as a hang


def _echo(text: str = "hi") -> Agent[Any]:
    return Agent(name="echo", model=ScriptedModel([[assistant_message(text)]]))


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in `count` daemon threads started together; fail (not hang) past DEADLINE.

    Daemon threads: a thread that hangs forever must not keep the test process alive.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def body(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # reported by the caller, one per thread
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    end = time.monotonic() + DEADLINE
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    hung = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not hung, f"threads {hung} of {count} never returned: a wait with no end"
    return results


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A database nobody has used yet, for the faults that only a new database has."""
    yield from fresh_pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("fresh_pg"))


# -- threads, loops, and one run id twice ------------------------------------------------------


def test_many_threads_first_calls_to_a_fresh_backend_all_return(fresh_url: str) -> None:
    """Each thread's run_sync has its own event loop; none may wait on another loop's lock."""
    backend = DurableBackend(LocalEngine(fresh_url))
    results = _in_threads(8, lambda i: backend.run_sync(_echo(f"t{i}"), "x").final_output)
    assert results == [f"t{i}" for i in range(8)]


def test_one_run_id_twice_at_once_runs_it_once(db_url: str) -> None:
    """From two threads: one executes, the other is refused by the lease or replays the result."""
    backend = DurableBackend(LocalEngine(db_url))
    calls: list[int] = []

    @function_tool
    def slow(n: int) -> str:
        calls.append(n)
        time.sleep(0.3)
        return "slow"

    def agent() -> Agent[Any]:
        script = [[function_call("slow", {"n": 1}, call_id="c1")], [assistant_message("done")]]
        return Agent(name="twice", tools=[slow], model=ScriptedModel(script))

    def work(_: int) -> Any:
        with run_id("twice"):
            return backend.run_sync(agent(), "x").final_output

    results = _in_threads(2, work)
    assert "done" in results
    assert all(r == "done" or isinstance(r, RunLeasedError) for r in results), results
    assert calls == [1]
    assert run_async(backend.get_run("twice")).status == "completed"


def test_one_run_id_twice_at_once_in_one_loop(db_url: str) -> None:
    engine = LocalEngine(db_url)
    backend = DurableBackend(engine)

    async def go() -> list[Any]:
        async def one() -> Any:
            with run_id("same-loop"):
                return (await backend.run(_echo("once"), "x")).final_output

        return await asyncio.wait_for(
            asyncio.gather(one(), one(), return_exceptions=True), DEADLINE
        )

    results = run_async(go())
    assert "once" in results
    assert all(r == "once" or isinstance(r, RunLeasedError) for r in results), results


# -- a fresh database raced by many starters ---------------------------------------------------


def test_many_engines_creating_a_new_database_at_once_all_succeed(fresh_url: str) -> None:
    """Separate engines (as separate processes would) race to create the schema: no loser."""

    def work(i: int) -> Any:
        return DurableBackend(LocalEngine(fresh_url)).run_sync(_echo(f"e{i}"), "x").final_output

    assert _in_threads(8, work) == [f"e{i}" for i in range(8)]


FLEET_PROGRAM = """
import asyncio, sys
from agents import Agent
from agents.testing import ScriptedModel, assistant_message
from runplane_durable import DurableBackend, LocalEngine
url, runs, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
backend = DurableBackend(LocalEngine(url))
def agent(i):
    return Agent(name="fleet", model=ScriptedModel([[assistant_message(f"r{i}")]]))
async def main():
    import os, time
    open(f"{go}.ready.{os.getpid()}", "w").close()
    while not os.path.exists(go):   # every process starts its runs at the same moment
        time.sleep(0.005)
    results = await asyncio.gather(
        *(backend.run(agent(i), "x") for i in range(runs)), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    for f in failed[:3]:
        print(type(f).__name__, f, file=sys.stderr)
    print(len(failed))
asyncio.run(main())
"""


def _fleet(tmp_path: Path, url: str, processes: int, runs: int) -> list[int]:
    """`processes` processes each start `runs` runs at once on `url`; failed runs per process."""
    program = tmp_path / "fleet.py"
    program.write_text(FLEET_PROGRAM)
    go = tmp_path / "go"
    env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(program), url, str(runs), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:  # until every process has imported the SDK
        ready = len(list(tmp_path.glob("go.ready.*")))
        if ready == processes or any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    go.touch()
    failed = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=DEADLINE * 2)
            assert p.returncode == 0, err
            assert not err.strip(), err
            failed.append(int(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
    return failed


@pytest.mark.slow
def test_a_fleet_of_processes_starting_on_a_new_database_loses_no_run(
    tmp_path: Path, fresh_url: str
) -> None:
    assert _fleet(tmp_path, fresh_url, processes=4, runs=25) == [0, 0, 0, 0]


# -- a database from a newer version -----------------------------------------------------------


def test_a_newer_database_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Refused before any table is created or the journal mode changed: byte for byte the same."""
    path = tmp_path / "newer.db"
    with sqlite3.connect(path) as conn:  # a rollback-journal file, as another tool writes it
        conn.execute("CREATE TABLE runplane_schema (id INTEGER PRIMARY KEY, version INTEGER)")
        conn.execute("INSERT INTO runplane_schema VALUES (1, 99)")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SchemaVersionError, match="nothing was written"):
        DurableBackend(LocalEngine(str(path))).run_sync(_echo(), "x")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.db"]  # no -wal, no -shm
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"runplane_schema"}


def test_a_newer_postgresql_database_is_refused_before_anything_is_written(fresh_pg: str) -> None:
    import asyncpg

    dsn = fresh_pg

    async def prepare() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE runplane_schema (id INTEGER PRIMARY KEY, version INT)")
        await conn.execute("INSERT INTO runplane_schema VALUES (1, 99)")
        await conn.close()

    async def tables() -> set[str]:
        conn = await asyncpg.connect(dsn)
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        await conn.close()
        return {r[0] for r in rows}

    run_async(prepare())
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        DurableBackend(LocalEngine(dsn)).run_sync(_echo(), "x")
    assert run_async(tables()) == {"runplane_schema"}


# -- a full disk, and a dropped connection -----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem of the test's own, so the disk really fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Fill the filesystem to the last byte with one file, removed to free the space again."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return filler


def _tool_agent(name: str, output_size: int) -> Agent[Any]:
    @function_tool
    def produce(n: int) -> str:
        return "x" * output_size

    script = [[function_call("produce", {"n": 1}, call_id="c1")], [assistant_message("done")]]
    return Agent(name=name, tools=[produce], model=ScriptedModel(script))


def test_a_full_disk_fails_one_run_and_poisons_nothing(small_disk: Path) -> None:
    backend = DurableBackend(LocalEngine(str(small_disk / "runs.db")))
    backend.run_sync(_echo("warm"), "x")  # schema in place
    filler = _fill(small_disk)
    with run_id("full"), pytest.raises(DatabaseError, match="disk is full") as info:
        backend.run_sync(_tool_agent("filler", 64 * 1024), "x")
    assert "run again with the same run id" in str(info.value)
    filler.unlink()  # space is back

    with run_id("after"):  # another run on the same backend, in the same process
        assert backend.run_sync(_echo("after"), "x").final_output == "after"
    stopped = run_async(backend.get_run("full"))
    # Recorded as failed when the rollback freed enough space for that, else left running;
    # either way its lease was given back and it is resumable.
    assert (stopped.status in ("failed", "running"), stopped.owner) == (True, None)
    with run_id("full"):  # and it resumes
        assert backend.run_sync(_tool_agent("filler", 64 * 1024), "x").final_output == "done"


def test_a_dropped_postgresql_connection_fails_one_step_and_the_next_run_works(
    pg_url: str,
) -> None:
    """The server ends the connection mid-run (a restart does the same): that run fails with a
    DatabaseError, no broken connection goes back to the pool, and the next run works."""
    import asyncpg

    async def terminate_runplane_connections() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'runplane-durable' AND pid <> pg_backend_pid()"
        )
        await conn.close()

    backend = DurableBackend(LocalEngine(pg_url))

    @function_tool
    async def cut(n: int) -> str:
        await terminate_runplane_connections()
        return "cut"

    script = [[function_call("cut", {"n": 1}, call_id="c1")], [assistant_message("done")]]
    agent = Agent(name="cut", tools=[cut], model=ScriptedModel(script))

    async def go() -> None:
        await backend.run(_echo("warm"), "x")  # the pool holds a connection now
        with run_id("dropped"):
            result = await backend.run(agent, "x")
        assert result.final_output == "done"  # a connection that died idle is replaced
        with run_id("next"):
            assert (await backend.run(_echo("next"), "x")).final_output == "next"
        await backend.engine.dispose()

    run_async(go())


# -- load beyond the pool ----------------------------------------------------------------------


def _concurrent_agent(i: int) -> Agent[Any]:
    @function_tool
    async def wait(n: int) -> str:
        await asyncio.sleep(0.01)
        return f"w{n}"

    script = [
        [function_call("wait", {"n": i}, call_id=f"c{i}-1")],
        [function_call("wait", {"n": i}, call_id=f"c{i}-2")],
        [assistant_message(f"done {i}")],
    ]
    return Agent(name="load", tools=[wait], model=ScriptedModel(script))


@pytest.mark.slow
def test_hundreds_of_concurrent_runs_share_a_bounded_pool(db_url: str) -> None:
    """More runs than the server has client slots (100 here): they wait for a connection."""
    backend = DurableBackend(LocalEngine(db_url, pool_size=4))
    count = 300

    async def go() -> list[Any]:
        return await asyncio.wait_for(
            asyncio.gather(
                *(backend.run(_concurrent_agent(i), "x") for i in range(count)),
                return_exceptions=True,
            ),
            DEADLINE * 2,
        )

    results = run_async(go())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, f"{len(failed)} of {count} failed, e.g. {failed[0]!r}"
    assert [r.final_output for r in results] == [f"done {i}" for i in range(count)]


@pytest.mark.slow
def test_two_processes_on_one_database_lose_no_run(tmp_path: Path, db_url: str) -> None:
    assert _fleet(tmp_path, db_url, processes=2, runs=200) == [0, 0]


def test_a_run_waiting_past_the_timeout_for_a_connection_says_what_to_raise(
    db_url: str,
) -> None:
    """The bound on waiting, reached: a clear error naming the setting, nothing written."""
    engine = LocalEngine(db_url, pool_size=1, timeout=0.5)
    spec = RunSpec("starved", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        database = engine.database
        tx = await database.transactions()
        if database.is_sqlite:  # the only connection, busy in its worker for longer than that
            holder: Any = asyncio.ensure_future(tx.call(lambda conn: time.sleep(1.5)))
            await asyncio.sleep(0.1)
        else:  # the only pooled connection, checked out
            holder = await database._postgres.engine().connect()  # type: ignore[union-attr]
        with pytest.raises(DatabaseError, match="RUNPLANE_DB_POOL_SIZE") as info:
            await engine.open_run(spec, lease_seconds=30)
        assert "waited 0.5 s" in str(info.value)
        if database.is_sqlite:
            await holder
        else:
            await holder.close()
        with pytest.raises(Exception, match="no run 'starved'"):
            await engine.get_run("starved")
        await engine.dispose()

    run_async(go())


# -- lease loss noticed before calling out -----------------------------------------------------


def test_a_stalled_holder_notices_its_lost_lease_before_calling_out(db_url: str) -> None:
    engine = LocalEngine(db_url)
    spec = RunSpec("stalled", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        stale = await engine.open_run(spec, lease_seconds=0.2)
        await stale.check_lease()  # fresh: free, and fine
        await asyncio.sleep(0.3)  # stalled past its lease; another process takes the run
        import runplane_durable.local.engine as local

        original = local.current_owner
        local.current_owner = lambda: "elsewhere:1:other"  # type: ignore[assignment]
        try:
            taker = await engine.open_run(spec, lease_seconds=30)
        finally:
            local.current_owner = original
        with pytest.raises(RunLeasedError, match="taken over"):
            await stale.check_lease()
        with pytest.raises(RunLeasedError):  # and from then on without asking the database
            await stale.check_lease()
        await stale.close()
        assert (await engine.get_run("stalled")).owner == "elsewhere:1:other"  # untouched
        await taker.close()
        await engine.dispose()

    run_async(go())


def test_a_reused_id_with_another_agent_names_both_agents(tmp_path: Path) -> None:
    backend = DurableBackend(LocalEngine(sqlite_url(tmp_path)))
    with run_id("named"):
        backend.run_sync(_echo(), "x")
    other = Agent(name="someone else", model=ScriptedModel([[assistant_message("x")]]))
    with run_id("named"), pytest.raises(RunInputMismatchError) as info:
        backend.run_sync(other, "x")
    message = str(info.value)
    assert "'echo'" in message
    assert "'someone else'" in message
    assert "different input" not in message


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("RUNPLANE_DB_POOL_SIZE", "lots", "whole number of connections"),
        ("RUNPLANE_DB_POOL_SIZE", "0", "whole number of connections"),
        ("RUNPLANE_DB_TIMEOUT", "-1", "positive number of seconds"),
        ("RUNPLANE_DB_TIMEOUT", "soon", "positive number of seconds"),
        ("RUNPLANE_DURABILITY", "paranoid", "use one of normal, full"),
    ],
)
def test_settings_that_do_not_parse_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(DatabaseError, match=says) as info:
        LocalEngine(sqlite_url(tmp_path))
    assert variable in str(info.value)
    assert not (tmp_path / "runs.db").exists()


def test_keyword_settings_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pool_size must be at least 1"):
        LocalEngine(sqlite_url(tmp_path), pool_size=0)
    with pytest.raises(ValueError, match="durability must be one of"):
        LocalEngine(sqlite_url(tmp_path), durability="maybe")  # type: ignore[arg-type]


@pytest.mark.parametrize(("level", "synchronous"), [("normal", 1), ("full", 2)])
def test_the_durability_level_sets_sqlite_synchronous(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, level: str, synchronous: int
) -> None:
    monkeypatch.setenv("RUNPLANE_DURABILITY", level)
    engine = LocalEngine(sqlite_url(tmp_path))

    def read(conn: Any) -> int:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())

    assert run_async(engine.database.call(read)) == synchronous
    run_async(engine.dispose())


def test_full_durability_asks_postgresql_for_synchronous_commit(pg_url: str) -> None:
    engine = LocalEngine(pg_url, durability="full")

    def read(conn: Any) -> str:
        return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())

    async def go() -> str:
        try:
            return await engine.database.call(read)
        finally:
            await engine.dispose()

    assert run_async(go()) == "on"


def test_a_read_only_filesystem_is_reported_as_not_writable(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(DatabaseError, match="not writable"):
        DurableBackend(LocalEngine(str(small_disk / "runs.db"))).run_sync(_echo(), "x")
