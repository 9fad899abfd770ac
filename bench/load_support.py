"""What server_load.py's sections share: `runplane server` processes, client processes, and
reading back what the database holds (journal entries, their times, the runs' owners)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LISTENING = re.compile(r"listening on (http://\S+)")
ACCESS = re.compile(r'"(GET|POST|PUT|DELETE) (/[^ ?"]*)')  # uvicorn's access log line
CLIENT = HERE / "server_load.py"  # its `--client` mode is the client process


# -- servers --------------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    lines: list[str]
    # Requests served, by method and path (its access log, read as it goes).
    requests: Counter[str] = field(default_factory=Counter)

    def peak_rss_mib(self) -> float:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    def open_fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except OSError:
            return -1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(database: str, cwd: Path, port: int = 0) -> Server:
    """`runplane server --port PORT --database DATABASE`; its URL read from the line it prints."""
    runplane = Path(sys.executable).with_name("runplane")
    process = subprocess.Popen(
        [str(runplane), "server", "--port", str(port), "--database", database],
        cwd=cwd,
        stdout=subprocess.PIPE,  # its access log, counted by `_drain`
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "RUNPLANE_SERVER_URL": ""},
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := LISTENING.search(line):
            server = Server(process, match.group(1), lines)
            # Keep draining its log so a chatty server never blocks on a full pipe.
            threading.Thread(target=_drain, args=(server,), daemon=True).start()
            return server
    process.kill()
    process.wait()
    raise RuntimeError(f"runplane server did not start: {''.join(lines)[-800:]}")


def _drain(server: Server) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        if match := ACCESS.search(line):
            server.requests[f"{match.group(1)} {match.group(2)}"] += 1
            continue
        server.lines.append(line)
        del server.lines[:-200]


def stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@contextlib.contextmanager
def servers(database: str, count: int, cwd: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for _ in range(count):
            started.append(start_server(database, cwd))
        yield started
    finally:
        for server in started:
            stop_server(server)


# -- client processes -----------------------------------------------------------------------------


def client_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "RUNPLANE_SERVER_URL": "", "RUNPLANE_DATABASE_URL": ""}
    env.update(extra)
    return env


def spawn_clients(
    targets: Sequence[str],
    runs: int,
    turns: int,
    prefix: str,
    *,
    extra: Sequence[str] = (),
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> list[subprocess.Popen[str]]:
    """One client process (server_load.py --client TARGET) per target, each with `runs` runs."""
    procs = []
    for n, target in enumerate(targets):
        argv = [sys.executable, str(CLIENT), "--client", target, "--runs", str(runs)]
        argv += ["--turns", str(turns), "--prefix", f"{prefix}-c{n}", *extra]
        procs.append(
            subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env or client_env(),
                cwd=cwd,
            )
        )
    return procs


def collect_clients(procs: Sequence[subprocess.Popen[str]], timeout: float) -> list[dict[str, Any]]:
    """Each client's RESULT (or {"error": why}), waiting at most `timeout` s from now for all."""
    deadline = time.monotonic() + timeout
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            results.append({"error": f"timed out after {timeout:.0f} s"})
            continue
        found = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if found:
            results.append(json.loads(found[-1][len("RESULT ") :]))
        else:
            tail = " | ".join(err.strip().splitlines()[-4:])
            results.append({"error": f"exit {proc.returncode}: {tail[:600]}"})
    return results


def run_clients(
    targets: Sequence[str],
    runs: int,
    turns: int,
    prefix: str,
    timeout: float,
    *,
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One client process per target, all started at once, each with `runs` runs."""
    return collect_clients(spawn_clients(targets, runs, turns, prefix, extra=extra), timeout)


def walls_of(results: Sequence[dict[str, Any]]) -> list[float]:
    return [w for r in results for w in r.get("walls", [])]


def failures_of(results: Sequence[dict[str, Any]]) -> tuple[int, list[str]]:
    failed = sum(int(r.get("failed", 0)) for r in results)
    notes = [r["error"] for r in results if "error" in r]
    notes += [f"{n} x {k}" for r in results for k, n in r.get("failures", {}).items()]
    return failed, notes


# -- what the database holds ----------------------------------------------------------------------


def query(database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` (parameters $1, $2, ...) read straight from the database the servers use:
    a SQLite path (read-only connection) or a PostgreSQL URL (asyncpg)."""
    if database.startswith("postgresql"):
        return asyncio.run(_pg_query(database, sql, params))
    path = database.removeprefix("sqlite:///")
    if not Path(path).exists():  # not made yet: the server makes it at its first write
        return []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return list(connection.execute(re.sub(r"\$\d+", "?", sql), params).fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # the server has not made its schema yet
            return []
        raise
    finally:
        connection.close()


async def _pg_query(url: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(row) for row in await connection.fetch(sql, *params)]
    finally:
        await connection.close()


def stored_steps(database: str, prefix: str, run_ids: Sequence[str], turns: int) -> dict[str, int]:
    """Lost and duplicated journal entries of `run_ids` (runs of `prefix` their caller saw
    finish), read back from the database: each must be completed and hold its 2 x turns - 1
    steps (a model call per turn, a tool output per turn but the last), each exactly once. A
    step missing from a finished run is lost; a run not completed, or missing, loses them all."""
    expected = 2 * turns - 1
    entries: dict[str, list[tuple[str, str]]] = {r: [] for r in run_ids}
    for run, kind, key in query(
        database,
        "SELECT run_id, kind, key FROM runplane_journal WHERE run_id LIKE $1",
        prefix + "%",
    ):
        if run in entries:
            entries[run].append((kind, key))
    status = dict(
        query(database, "SELECT id, status FROM runplane_runs WHERE id LIKE $1", prefix + "%")
    )
    lost = duplicated = missing = not_completed = 0
    for run, keys in entries.items():
        if run not in status:
            missing += 1
        elif status[run] != "completed":
            not_completed += 1
        duplicated += len(keys) - len(set(keys))
        lost += expected if status.get(run) != "completed" else max(0, expected - len(set(keys)))
    return {
        "lost": lost,
        "duplicated": duplicated,
        "missing_runs": missing,
        "not_completed": not_completed,
    }


def first_entries_after(database: str, prefix: str, moment: float) -> dict[str, float]:
    """Each run's (of `prefix`) first journal entry committed after `moment` (a time.time())."""
    rows = query(
        database,
        "SELECT run_id, MIN(created_at) FROM runplane_journal "
        "WHERE run_id LIKE $1 AND created_at > $2 GROUP BY run_id",
        prefix + "%",
        moment,
    )
    return {run: float(at) for run, at in rows}


def tool_reruns(calls_log: Path) -> tuple[int, int]:
    """(tool executions, executions of a call that had run before) in a load_jobs calls log."""
    seen: set[tuple[str, str]] = set()
    total = again = 0
    if calls_log.exists():
        for line in calls_log.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            total += 1
            key = (parts[0], parts[1])
            again += key in seen
            seen.add(key)
    return total, again


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_for(check: Any, what: str, timeout: float, every: float = 0.1) -> Any:
    """`check()` until it is truthy (its value), or RuntimeError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)
