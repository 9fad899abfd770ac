"""server_load.py's fault sections, under load: a `runplane worker` killed with SIGKILL while it
executes many runs (another worker takes them over), and a `runplane server` killed with SIGKILL
while client processes run through it (restarted on the same port).

Both run `load_jobs.py`'s agent (a model that answers at once, a tool that waits, so runs are in
the middle when the kill comes) and measure, from the database: each interrupted run's first
journal entry after the kill, the steps lost or duplicated (each run must hold its steps exactly
once), the runs not completed, and the tools executed again (a tool in flight at the kill runs
again: at least once, by design; the journal holds its output once).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from load_support import (
    HERE,
    Server,
    client_env,
    collect_clients,
    failures_of,
    first_entries_after,
    free_port,
    pct,
    query,
    servers,
    spawn_clients,
    start_server,
    stop_server,
    stored_steps,
    tool_reruns,
    wait_for,
)

CLI = "import sys; from runplane.cli import main; sys.exit(main())"


def _workdir(cwd: Path, name: str) -> Path:
    work = cwd / name
    work.mkdir()
    shutil.copyfile(HERE / "load_jobs.py", work / "load_jobs.py")
    return work


def _jobs_env(work: Path, turns: int, tool_ms: float) -> dict[str, str]:
    return client_env(
        BENCH_TURNS=str(turns),
        BENCH_TOOL_MS=f"{tool_ms:g}",
        BENCH_CALLS=str(work / "calls.log"),
        PYTHONUNBUFFERED="1",
    )


def _worker(
    work: Path, server: Server, env: dict[str, str], concurrency: int, poll: float
) -> subprocess.Popen[str]:
    """`runplane worker load_jobs --server URL`, once it said what it serves."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c", CLI, "worker", "load_jobs", "--server", server.url),
            *("--concurrency", str(concurrency), "--poll", f"{poll:g}"),
            # Long enough for B to start while A is stopped; a dead A's runs pass at once
            # anyway (its pid is gone on this host), so it changes nothing measured.
            *("--lease-seconds", "120"),
        ],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "runplane worker (pid" not in line:
        proc.kill()
        raise RuntimeError(f"runplane worker did not start: {line}{proc.stderr.read()[-600:]}")
    # Its log (a line per run) must never fill the pipe and stall it.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc


def _held_by(database: str, prefix: str, pid: int) -> set[str]:
    rows = query(
        database,
        "SELECT id, owner FROM runplane_runs WHERE id LIKE $1 AND status = 'running'",
        prefix + "%",
    )
    return {run for run, owner in rows if owner and f":{pid}:" in owner}


def _started(database: str, prefix: str) -> int:
    rows = query(
        database,
        "SELECT COUNT(DISTINCT run_id) FROM runplane_journal WHERE run_id LIKE $1",
        prefix + "%",
    )
    return int(rows[0][0]) if rows else 0


def _completed(database: str, prefix: str) -> int:
    rows = query(
        database,
        "SELECT COUNT(*) FROM runplane_runs WHERE id LIKE $1 AND status = 'completed'",
        prefix + "%",
    )
    return int(rows[0][0]) if rows else 0


def _after(
    firsts: dict[str, float], runs: set[str], moment: float
) -> tuple[list[float], list[str]]:
    """ms from `moment` to each run's first entry after it; the runs that have none."""
    ms = [(firsts[r] - moment) * 1000 for r in runs if r in firsts]
    return ms, sorted(r for r in runs if r not in firsts)


def worker_kill(
    name: str,
    database: str,
    runs: int,
    turns: int,
    tool_ms: float,
    cwd: Path,
    poll: float,
    prefix: str,
) -> dict[str, Any]:
    """`runs` runs started with Runner.start, all claimed by worker A (concurrency `runs`);
    worker B (the same) starts beside it; once every run has journaled a step, A is killed with
    SIGKILL and B takes its runs over. The ms from the kill to each one's next journal entry."""
    work = _workdir(cwd, prefix)
    env = _jobs_env(work, turns, tool_ms)
    with servers(database, 1, cwd) as (server,):
        workers: list[subprocess.Popen[str]] = []
        try:
            a = _worker(work, server, env, runs, poll)
            workers.append(a)
            (starter,) = spawn_clients(
                [server.url], runs, turns, prefix, extra=["--start"], cwd=work, env=env
            )
            (started,) = collect_clients([starter], 120)
            if "error" in started:
                raise RuntimeError(f"starting the runs: {started['error']}")
            run_prefix = f"{prefix}-c0-"
            run_ids = [f"{run_prefix}{i}" for i in range(runs)]
            wait_for(
                lambda: len(_held_by(database, run_prefix, a.pid)) == runs,
                f"worker A executing all {runs} runs",
                120,
            )
            # A waits (SIGSTOP: its runs stay its own, its pid alive) while B starts, so that
            # no run ends before the kill; then both go on, A until every run took a step.
            os.kill(a.pid, signal.SIGSTOP)
            try:
                workers.append(_worker(work, server, env, runs, poll))
            finally:
                os.kill(a.pid, signal.SIGCONT)
            wait_for(lambda: _started(database, run_prefix) == runs, "every run's first step", 120)
            held = _held_by(database, run_prefix, a.pid)
            os.kill(a.pid, signal.SIGKILL)
            killed_at = time.time()
            a.wait()
            wait_for(
                lambda: _completed(database, run_prefix) == runs,
                "worker B completing every run",
                300,
                every=0.25,
            )
            finished_s = time.time() - killed_at
            firsts = first_entries_after(database, run_prefix, killed_at)
            by_b = {r for r in held if r in firsts}
            ms, none_after = _after(firsts, held, killed_at)
            stored = stored_steps(database, run_prefix, run_ids, turns)
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    executions, again = tool_reruns(work / "calls.log")
    return {
        "setup": name,
        "runs": runs,
        "held_at_kill": len(held),
        "taken_over": len(by_b),
        "finished_before_kill": len(none_after),
        "p50_ms": pct(ms, 0.5),
        "p99_ms": pct(ms, 0.99),
        "max_ms": max(ms, default=float("nan")),
        "all_done_s": finished_s,
        "tools": executions,
        "tools_again": again,
        **stored,
    }


def server_kill(
    name: str,
    database: str,
    runs: int,
    clients: int,
    turns: int,
    tool_ms: float,
    cwd: Path,
    prefix: str,
) -> dict[str, Any]:
    """`runs` runs (Runner.run in `clients` processes) through one server on a fixed port; the
    server is killed with SIGKILL once every run has journaled a step, and started again on the
    same port at once. The ms from the new server listening to each interrupted run's next
    journal entry (the programs retry with backoff, 0.05 s doubling to 1 s)."""
    work = _workdir(cwd, prefix)
    env = _jobs_env(work, turns, tool_ms)
    port = free_port()
    server = start_server(database, cwd, port)
    procs: list[subprocess.Popen[str]] = []
    try:
        per = runs // clients
        procs = spawn_clients(
            [server.url] * clients, per, turns, prefix, extra=["--jobs"], cwd=work, env=env
        )
        run_ids = [f"{prefix}-c{c}-{i}" for c in range(clients) for i in range(per)]
        wait_for(lambda: _started(database, prefix) == len(run_ids), "every run's first step", 180)
        os.kill(server.process.pid, signal.SIGKILL)
        killed_at = time.time()
        server.process.wait()
        running = {
            r
            for r, status in query(
                database, "SELECT id, status FROM runplane_runs WHERE id LIKE $1", prefix + "%"
            )
            if status == "running"
        }
        server = start_server(database, cwd, port)
        ready_at = time.time()
        results = collect_clients(procs, 300)
        firsts = first_entries_after(database, prefix, killed_at)
        ms, none_after = _after(firsts, running, ready_at)
        finished = [f"{prefix}-c{c}-{i}" for c, r in enumerate(results) for i in r.get("ok", [])]
        stored = stored_steps(database, prefix, finished, turns)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        stop_server(server)
    failed, notes = failures_of(results)
    executions, again = tool_reruns(work / "calls.log")
    return {
        "setup": name,
        "runs": len(run_ids),
        "running_at_kill": len(running),
        "restart_s": ready_at - killed_at,
        "p50_ms": pct(ms, 0.5),
        "p99_ms": pct(ms, 0.99),
        "max_ms": max(ms, default=float("nan")),
        "no_step_after": len(none_after),
        "failed": failed,
        "notes": notes[:3],
        "tools": executions,
        "tools_again": again,
        **stored,
    }
