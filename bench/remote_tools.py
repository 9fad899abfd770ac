"""What a remote tool costs: the latency a call adds over the same tool run locally, and the
time from a worker's SIGKILL to its task's retry starting on another worker.

    python bench/remote_tools.py                       # SQLite and PostgreSQL, about a minute
    python bench/remote_tools.py --calls 50 --no-pg

(a) `--calls` durable runs, one after another, each calling one trivial tool once: local, then
remote with a worker process already serving the queue (idle, as workers usually are); the
median and p90 of each run's wall time, and the median the remote call adds. (b) two worker
processes; the one that starts a task is killed with SIGKILL; the time until the other starts
it (the retry delay is `--retry-delay`, default 1.0 s, the default of `remote()`). Loopback
PostgreSQL: a fresh database on postgresql://postgres@127.0.0.1:5432, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, LocalEngine, remote, remote_tools, run_id
from runplane_durable.worker.tool_tasks import serve_tool_tasks

QUEUE = "bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def echo(text: str) -> str:
    """Say it back."""
    if os.environ.get("BENCH_HOLD"):
        with open(os.environ["BENCH_LEDGER"], "a", encoding="utf-8") as f:
            f.write(f"{time.time()} {os.getpid()}\n")
        time.sleep(float(os.environ["BENCH_HOLD"]))
    return text


LOCAL = function_tool(echo)
REMOTE = remote(LOCAL, queue=QUEUE, retry_delay=float(os.environ.get("BENCH_RETRY_DELAY", "1")))


async def one_run(url: str, tool: Any) -> float:
    model = ScriptedModel(
        [[function_call("echo", {"text": "hi"}, call_id="c1")], [assistant_message("ok")]]
    )
    backend = DurableBackend(LocalEngine(url))
    started = time.perf_counter()
    with run_id(f"bench-{uuid.uuid4().hex[:12]}"):
        await backend.run(Agent(name="bench", model=model, tools=[tool]), "go")
    seconds = time.perf_counter() - started
    await backend.engine.dispose()
    return seconds


def worker(url: str, **env: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", url],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


async def serve(url: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("serving", flush=True)
    await serve_tool_tasks(LocalEngine(url), remote_tools(QUEUE), queue=QUEUE, stop=stop)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def latency(url: str, calls: int) -> None:
    asyncio.run(one_run(url, LOCAL))  # warm: schema, imports
    local = [asyncio.run(one_run(url, LOCAL)) for _ in range(calls)]
    proc = worker(url)
    try:
        time.sleep(1.0)  # idle: it polls at its slowest
        far = [asyncio.run(one_run(url, REMOTE)) for _ in range(calls)]
    finally:
        stop(proc)
    for name, times in (("local", local), ("remote", far)):
        ms = sorted(t * 1000 for t in times)
        print(
            f"  {name:6} run: median {statistics.median(ms):7.1f} ms, "
            f"p90 {ms[int(len(ms) * 0.9) - 1]:7.1f} ms"
        )
    added = statistics.median(far) - statistics.median(local)
    print(f"  a remote call adds {added * 1000:.1f} ms (median)")


def kill_to_retry(url: str, retry_delay: float, tmp: Path) -> None:
    ledger = tmp / f"ledger-{uuid.uuid4().hex[:6]}"
    env = {"BENCH_HOLD": "1.5", "BENCH_LEDGER": str(ledger), "BENCH_RETRY_DELAY": str(retry_delay)}
    os.environ.update(env)
    workers = {p.pid: p for p in (worker(url, **env), worker(url, **env))}
    try:
        run = subprocess.Popen([sys.executable, __file__, "--once", url], env={**os.environ, **env})
        deadline = time.monotonic() + 30
        while not (ledger.exists() and ledger.read_text().strip()):
            assert time.monotonic() < deadline, "no worker started the task"
            time.sleep(0.005)
        victim = int(ledger.read_text().split()[1])
        os.kill(victim, signal.SIGKILL)
        killed = time.time()
        workers[victim].wait()
        while len(ledger.read_text().splitlines()) < 2:
            assert time.monotonic() < deadline, "the task was not retried"
            time.sleep(0.005)
        retried = float(ledger.read_text().splitlines()[1].split()[0])
        print(
            f"  worker SIGKILL to the retry starting: {retried - killed:.3f} s "
            f"(retry_delay {retry_delay:g} s)"
        )
        run.wait(timeout=60)
    finally:
        for proc in workers.values():
            stop(proc)
        for name in env:
            os.environ.pop(name, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--retry-delay", type=float, default=1.0)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--once", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    if args.once:
        asyncio.run(one_run(args.once, REMOTE))
        return
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        urls = {"SQLite": f"sqlite:///{tmp}/runs.db"}
        pg_name = f"bench_remote_{uuid.uuid4().hex[:8]}"
        if not args.no_pg:
            _admin(f'CREATE DATABASE "{pg_name}"')
            urls["PostgreSQL"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
        try:
            for name, url in urls.items():
                print(f"{name}:")
                latency(url, args.calls)
                kill_to_retry(url, args.retry_delay, Path(tmp))
        finally:
            if not args.no_pg:
                _admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def _admin(sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


if __name__ == "__main__":
    main()
