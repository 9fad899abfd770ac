"""A `runplane server` killed with SIGKILL under load and started again on the same port: a few
client processes run many runs at once through it; every run goes on once it is back and
completes, each run's journal holds exactly its steps, each once, numbered without a gap (so no
step the server acknowledged was lost), and its events too. On SQLite and on PostgreSQL.

(tests/durable/remote/test_server_restart.py is the same fault for one run, step by step.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.durable import sqlite_url
from support.durable_server import Server, server_env
from support.steady_runs import check_runs, finish, journal_counts, start, wait_for

CLIENTS, RUNS, TURNS = 3, 8, 8  # 24 runs at once, 8 tool calls each
DOWN = 1.0  # seconds the server stays dead


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_server_killed_under_load_and_restarted_loses_nothing(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        url = request.getfixturevalue("private_pg").url
    server = Server(url, tmp_path / "server.log")
    server.start()
    env = server_env(server.url)
    prefixes = [f"load{c}" for c in range(CLIENTS)]
    hold = tmp_path / "hold"
    hold.touch()  # no run finishes before the kill, however slow this machine is
    procs = [start(tmp_path, env, runs=RUNS, turns=TURNS, prefix=p) for p in prefixes]
    total = CLIENTS * RUNS
    try:

        def under_way() -> bool:
            counts = journal_counts(url)
            return len(counts) == total and sum(counts.values()) >= total * 4

        wait_for("every run under way", under_way, procs)
        server.kill9()
        at_kill = journal_counts(url)
        time.sleep(DOWN)
        for proc in procs:
            assert proc.poll() is None, proc.communicate()  # the clients wait for it
        server.start()  # the same port; back once /healthz answers
        back = time.monotonic()
        hold.unlink()
        first: list[float] = []

        def all_going_on() -> bool:
            counts = journal_counts(url)
            moved = [r for r, n in counts.items() if n > at_kill.get(r, 0)]
            if moved and not first:
                first.append(time.monotonic() - back)
            done = [r for r, n in counts.items() if n == 2 * TURNS + 1]
            return len(set(moved) | set(done)) == total

        wait_for("every run going on after the restart", all_going_on, procs)
        every = time.monotonic() - back
        print(
            f"\nfigure: {database}, {total} runs from {CLIENTS} processes, server killed after "
            f"{sum(at_kill.values())} journaled steps, dead {DOWN:g} s: from restart to the "
            f"first run going on {first[0]:.2f} s, to every run going on {every:.2f} s"
        )
    except BaseException:
        for proc in procs:
            proc.kill()
            proc.communicate()
        server.stop()
        raise
    errs = [
        finish(proc, tmp_path, runs=RUNS, turns=TURNS, prefix=prefix)
        for proc, prefix in zip(procs, prefixes, strict=True)
    ]
    server.stop()
    assert any("did not answer" in err for err in errs)  # they did see the server gone
    for prefix in prefixes:
        check_runs(url, prefix, runs=RUNS, turns=TURNS)
