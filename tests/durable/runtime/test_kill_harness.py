"""kill -9 at uniformly random moments, in every mode on both databases, embedded and in server
mode (the program reaching a `runplane server` on that database through RUNPLANE_SERVER_URL):
nothing journaled repeats.

A run with two tools called in parallel, a handoff and structured output is killed twice at
random moments and resumed to its end, over and over (see support/kill_harness.py). What is
checked, per process: no model call whose response was committed before it started is asked
again, at most one uncommitted model call (the one in flight) per killed process, no tool whose
output was committed is run again, and the last process commits all it did; per run: the right
final output, `completed` with no owner, and an event log without a repeated step.

    RUNPLANE_KILL_TRIALS=N   trials per mode and database (default 1, for CI)
    RUNPLANE_KILL_SEED=S     replay the kill moments of a failing run (printed with the figures)

A seed reproduces the moments drawn, not the machine's timing, so a failure at one seed is
reproduced by running that seed a few times.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from support.durable import sqlite_url
from support.durable_programs import TIMEOUT
from support.durable_server import Server
from support.kill_harness import KillProgram, Tally, calibrate, trial

pytestmark = pytest.mark.slow

MODES = ["run", "run_sync", "run_streamed"]
# "server-X": the program runs against a `runplane server` on database X.
DATABASES = ["sqlite", "postgresql", "server-sqlite", "server-postgresql"]
TRIALS = int(os.environ.get("RUNPLANE_KILL_TRIALS", "1"))
RECALIBRATE = 5  # trials between two measurements of a whole run
MARGIN = 1.1  # kill moments run a little past the run's end
SEED = int(os.environ.get("RUNPLANE_KILL_SEED") or random.SystemRandom().randrange(2**32))


def _campaign(
    root: Path, mode: str, database: str, pg_url: str, programs: list[KillProgram]
) -> Tally:
    """One mode on one database: TRIALS runs, each killed twice and resumed to its end.

    How long a whole run takes is measured here, under the load the trials run in, and again
    every few trials as that load changes: kill moments are drawn over that length and a little
    past it (the outcome's commit and the process's exit).
    """
    rng = random.Random(f"{SEED}:{mode}:{database}")  # the same draws whatever the threads do
    prefix = f"{SEED}-{mode}-{database}"

    served = database.startswith("server-")
    server: Server | None = None
    if served:  # one server for the campaign, on one database, as a deployment has
        root.mkdir(parents=True)
        url = pg_url if database.endswith("postgresql") else sqlite_url(root)
        server = Server(url, root / "server.log")
        server.start()

    def program(name: str) -> KillProgram:
        workdir = root / name
        workdir.mkdir(parents=True)
        if server is not None:
            made = KillProgram(workdir, server.database, server)
        else:
            made = KillProgram(workdir, pg_url if database == "postgresql" else sqlite_url(workdir))
        programs.append(made)
        return made

    tally = Tally()
    window = 0.0
    try:
        for n in range(TRIALS):
            if n % RECALIBRATE == 0:
                window = calibrate(program(f"calibrate-{n}"), mode, f"{prefix}-calibrate-{n}")
                tally.windows.append(window)
            tally.add(trial(program(f"trial-{n}"), mode, f"{prefix}-{n}", MARGIN * window, rng))
    finally:
        if server is not None:
            server.stop()
    return tally


@pytest.fixture(scope="module")
def campaigns(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str
) -> Iterator[dict[tuple[str, str], Future[Tally]]]:
    """Every mode on every database, side by side: the processes mostly import the SDK."""
    root = tmp_path_factory.mktemp("kills")
    programs: list[KillProgram] = []
    pool = ThreadPoolExecutor(max_workers=len(MODES))
    try:
        yield {
            (mode, db): pool.submit(_campaign, root / f"{mode}-{db}", mode, db, pg_url, programs)
            for db in DATABASES
            for mode in MODES
        }
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # bounded: every wait has a timeout
        for made in programs:
            made.cleanup()


@pytest.mark.parametrize("database", DATABASES)
@pytest.mark.parametrize("mode", MODES)
def test_random_kill_9_then_resume_repeats_nothing_journaled(
    campaigns: dict[tuple[str, str], Future[Tally]],
    mode: str,
    database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally = campaigns[mode, database].result(timeout=TRIALS * 8 * TIMEOUT)
    landed = "; ".join(f"{where}: {n}" for where, n in sorted(tally.landed.items()))
    with capsys.disabled():
        print(
            f"\nkill harness {mode} on {database}: seed {SEED}, a run takes "
            f"{min(tally.windows):.2f}-{max(tally.windows):.2f} s, "
            f"{tally.trials} trials, "
            f"{tally.kills} kills ({tally.missed} after the process had finished), "
            f"{len(tally.failures)} failures. Kills landed: {landed}"
        )
    assert not tally.failures, (
        f"RUNPLANE_KILL_SEED={SEED} RUNPLANE_KILL_TRIALS={TRIALS} reproduces the kill moments:\n"
        + "\n".join(tally.failures)
    )
