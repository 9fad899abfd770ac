"""Durable runs through `runplane server`: added latency per step, throughput, server memory, and
lost or duplicated steps, against the SDK's own runner on the same scripted workload.

Each measurement runs its clients in fresh processes (this file, `--client`), pointed at real
`runplane server` processes under uvicorn on loopback ports, with RUNPLANE_SERVER_URL as a user
would set it; the SDK's runner runs the same agents in the same kind of process ("sdk"):

  (a) one run at a time: ms per step through one server on SQLite and on PostgreSQL, the SDK's,
      and the ms the server adds per step (median of interleaved repeats, marginal between two
      turn counts so that opening a run is not counted per step);
  (b) N concurrent runs (100 and 1,000 by default) through one server on SQLite, one server on
      PostgreSQL, and two servers on one PostgreSQL (the clients split between them): journaled
      steps per second (journal entries committed / the batch's wall time), p50 and p99 of the
      ms each run added per step over the SDK's median at the same concurrency, the servers'
      peak RSS, failed runs, and lost or duplicated journal entries, read back from the database
      (each run must hold exactly its steps, each once);
  (c) the targets of issue #11 against what was measured.

    python bench/server_load.py                 # about 4 minutes on a 2-core VM
    python bench/server_load.py --quick         # about 1.5 minutes
    python bench/server_load.py --concurrency 100 --turns 10 --no-pg

PostgreSQL comes from --pg or RUNPLANE_BENCH_PG; by default a fresh database on
postgresql://postgres@127.0.0.1:5432, dropped at the end (one per server setup).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from durable import ENV_PG, make_agent, pg_database  # noqa: E402  (bench/)

LISTENING = re.compile(r"listening on (http://\S+)")


# -- servers --------------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    lines: list[str]

    def peak_rss_mib(self) -> float:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")


def start_server(database: str, cwd: Path) -> Server:
    """`runplane server --port 0` on `database`; its URL read from the line it prints."""
    runplane = Path(sys.executable).with_name("runplane")
    process = subprocess.Popen(
        [str(runplane), "server", "--port", "0", "--database", database],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RUNPLANE_SERVER_URL": ""},
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if match := LISTENING.search(line):
            server = Server(process, match.group(1), lines)
            # Keep draining its log so a chatty server never blocks on a full pipe.
            threading.Thread(target=_drain, args=(process, lines), daemon=True).start()
            return server
    process.kill()
    raise RuntimeError(f"runplane server did not start: {''.join(lines)[-800:]}")


def _drain(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        del lines[:-200]


def stop_server(server: Server) -> None:
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


# -- clients (fresh processes) --------------------------------------------------------------------


async def client_main(args: argparse.Namespace) -> None:
    """In a fresh process: `--runs` runs at once, each `--turns` turns; every run's wall time."""
    from agents.run import AgentRunner

    if args.client == "sdk":
        runner: Any = AgentRunner()
    else:
        os.environ["RUNPLANE_SERVER_URL"] = args.client
        from runplane_durable import Runner

        runner = Runner
    prefix = args.prefix
    await runner.run(make_agent(2), "warm-up", max_turns=3)  # imports, connections, caches
    failures: dict[str, int] = {}

    async def one(i: int) -> float | None:
        from runplane_durable import run_id

        started = time.perf_counter()
        try:
            if args.client == "sdk":
                result = await runner.run(make_agent(args.turns), "go", max_turns=args.turns + 1)
            else:
                with run_id(f"{prefix}-{i}"):
                    result = await runner.run(
                        make_agent(args.turns), "go", max_turns=args.turns + 1
                    )
            if result.final_output != "done":
                raise RuntimeError(f"final output {result.final_output!r}")
        except Exception as exc:
            key = f"{type(exc).__name__}: {exc}"[:200]
            failures[key] = failures.get(key, 0) + 1
            return None
        return time.perf_counter() - started

    started = time.perf_counter()
    walls = await asyncio.gather(*(one(i) for i in range(args.runs)))
    batch = time.perf_counter() - started
    print(
        "RESULT "
        + json.dumps(
            {
                "walls": [w for w in walls if w is not None],
                "batch_s": batch,
                "failed": sum(failures.values()),
                "failures": failures,
            }
        ),
        flush=True,
    )


def run_clients(
    targets: Sequence[str], runs: int, turns: int, prefix: str, timeout: float
) -> list[dict[str, Any]]:
    """One client process per target, all started at once, each with `runs` runs."""
    procs = []
    for n, target in enumerate(targets):
        argv = [
            sys.executable,
            __file__,
            "--client",
            target,
            "--runs",
            str(runs),
            "--turns",
            str(turns),
            "--prefix",
            f"{prefix}-c{n}",
        ]
        env = {**os.environ, "RUNPLANE_SERVER_URL": "", "RUNPLANE_DATABASE_URL": ""}
        procs.append(
            subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
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


# -- checking what was stored ---------------------------------------------------------------------


async def stored_steps(
    database: str, prefix: str, runs: int, clients: int, turns: int
) -> dict[str, int]:
    """Lost and duplicated journal entries of the batch's runs, read back from the database."""
    from runplane_durable import LocalEngine

    engine = LocalEngine(database, read_only=True)
    expected = 2 * turns - 1  # a model call per turn and a tool output per turn but the last
    lost = duplicated = missing_runs = not_completed = 0
    try:
        for c in range(clients):
            for i in range(runs):
                run = f"{prefix}-c{c}-{i}"
                try:
                    record = await engine.get_run(run)
                except Exception:
                    missing_runs += 1
                    lost += expected
                    continue
                if record.status != "completed":
                    not_completed += 1
                journal = await engine.read_journal(run)
                keys = [(e.kind, e.key) for e in journal]
                duplicated += len(keys) - len(set(keys))
                lost += max(0, expected - len(set(keys)))
    finally:
        await engine.dispose()
    return {
        "lost": lost,
        "duplicated": duplicated,
        "missing_runs": missing_runs,
        "not_completed": not_completed,
    }


# -- measurements ---------------------------------------------------------------------------------


def walls_of(results: Sequence[dict[str, Any]]) -> list[float]:
    return [w for r in results for w in r.get("walls", [])]


def failures_of(results: Sequence[dict[str, Any]]) -> tuple[int, list[str]]:
    failed = sum(int(r.get("failed", 0)) for r in results)
    notes = [r["error"] for r in results if "error" in r]
    notes += [k for r in results for k in r.get("failures", {})]
    return failed, notes


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sequential(
    setups: dict[str, str], low: int, high: int, repeats: int, prefix: str
) -> dict[str, float]:
    """(a): ms per step, marginal between `low` and `high` turns, one run at a time."""
    per_step: dict[str, list[float]] = {label: [] for label in ["sdk", *setups]}
    for r in range(repeats):
        order = ["sdk", *setups]
        order = order[r % len(order) :] + order[: r % len(order)]
        for label in order:
            target = "sdk" if label == "sdk" else setups[label]
            times = {}
            for turns in (low, high):
                (result,) = run_clients([target], 1, turns, f"{prefix}-{label}-{r}-{turns}", 120)
                walls = result.get("walls") or [float("nan")]
                times[turns] = walls[0]
            per_step[label].append((times[high] - times[low]) / (high - low) * 1000)
    return {label: statistics.median(v) for label, v in per_step.items()}


def concurrent(
    name: str,
    database: str,
    server_count: int,
    runs: int,
    turns: int,
    sdk_ms_per_step: float,
    cwd: Path,
    prefix: str,
) -> dict[str, Any]:
    """(b): `runs` concurrent runs through `server_count` servers on one database."""
    with servers(database, server_count, cwd) as started:
        per_client = runs // server_count
        results = run_clients([s.url for s in started], per_client, turns, prefix, 900)
        rss = [s.peak_rss_mib() for s in started]
    walls = walls_of(results)
    failed, notes = failures_of(results)
    batch = max((r.get("batch_s", 0.0) for r in results), default=0.0)
    stored = asyncio.run(stored_steps(database, prefix, per_client, server_count, turns))
    committed = (2 * turns - 1) * len(walls)
    added = [w / turns * 1000 - sdk_ms_per_step for w in walls]
    return {
        "setup": name,
        "runs": per_client * server_count,
        "steps_per_s": committed / batch if batch else float("nan"),
        "p50_added_ms": pct(added, 0.5),
        "p99_added_ms": pct(added, 0.99),
        "server_rss_mib": rss,
        "failed": failed,
        "notes": notes[:3],
        **stored,
    }


def sdk_concurrent(runs: int, turns: int) -> float:
    """The SDK's median ms per step with `runs` runs at once in one process."""
    (result,) = run_clients(["sdk"], runs, turns, "sdk", 900)
    walls = result.get("walls") or [float("nan")]
    return statistics.median(walls) / turns * 1000


# -- main -----------------------------------------------------------------------------------------


def verdict(value: float, limit: float, *, above: bool = False) -> str:
    if value != value:  # NaN
        return "not measured"
    ok = value >= limit if above else value <= limit
    return "met" if ok else "NOT met"


async def _with_pg(args: argparse.Namespace, tmp: Path) -> None:
    if args.no_pg:
        await asyncio.to_thread(run_all, args, tmp, None)  # it runs loops of its own
        return
    explicit = args.pg or os.environ.get(ENV_PG)
    async with pg_database(explicit) as url:
        await asyncio.to_thread(run_all, args, tmp, url)


def run_all(args: argparse.Namespace, tmp: Path, pg: str | None) -> None:
    import runplane_durable

    print(
        f"runplane server bench, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, runplane-durable "
        f"{getattr(runplane_durable, '__version__', '?')}, load {os.getloadavg()[0]:.2f}"
    )
    sqlite_db = str(tmp / "server-bench.db")
    low, high = (2, 10) if args.quick else (2, 20)
    repeats = 3 if args.quick else 5

    print("\n(a) one run at a time, ms per step (marginal between", low, "and", high, "turns)")
    setups: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        setups["server-sqlite"] = stack.enter_context(servers(sqlite_db, 1, tmp))[0].url
        if pg is not None:
            setups["server-pg"] = stack.enter_context(servers(pg, 1, tmp))[0].url
        seq = sequential(setups, low, high, repeats, "seq")
    sdk = seq["sdk"]
    print(f"  {'runner':<16}{'ms/step':>10}{'added':>10}{'ratio':>8}")
    for label, ms in seq.items():
        print(f"  {label:<16}{ms:>10.2f}{ms - sdk:>10.2f}{ms / sdk:>8.2f}")

    print(f"\n(b) concurrent runs of {args.turns} turns")
    rows = []
    for runs in args.concurrency:
        base = sdk_concurrent(runs, args.turns)
        print(f"  SDK at {runs} concurrent: {base:.2f} ms per step (median run)")
        plan = [("1 server, SQLite", sqlite_db, 1)]
        if pg is not None:
            plan += [("1 server, PostgreSQL", pg, 1), ("2 servers, PostgreSQL", pg, 2)]
        for name, db, count in plan:
            prefix = f"c{runs}-{name.split(',')[0][0]}{count}-{db[-6:]}".replace("/", "_")
            row = concurrent(name, db, count, runs, args.turns, base, tmp, prefix)
            rows.append(row)
            rss = "/".join(f"{m:.0f}" for m in row["server_rss_mib"])
            print(
                f"  {runs:>5} {name:<22} {row['steps_per_s']:>8.0f} steps/s  p50 "
                f"+{row['p50_added_ms']:.2f} ms  p99 +{row['p99_added_ms']:.2f} ms  RSS {rss} MiB"
                f"  failed {row['failed']}  lost {row['lost']}  duplicated {row['duplicated']}"
                f"  not completed {row['not_completed']}"
            )
            for note in row["notes"]:
                print(f"        {note}")

    print("\n(c) targets (issue #11)")
    one = seq.get("server-sqlite", float("nan")) - sdk
    print(
        f"  server mode <= 3 ms added per step at 1 run (SQLite): +{one:.2f} ms: {verdict(one, 3)}"
    )
    if "server-pg" in seq:
        one_pg = seq["server-pg"] - sdk
        print(
            f"  server mode <= 3 ms added per step at 1 run (PostgreSQL): +{one_pg:.2f} ms: "
            f"{verdict(one_pg, 3)}"
        )
    pg_one = [r for r in rows if r["setup"] == "1 server, PostgreSQL"]
    if pg_one:
        best_rate = max(r["steps_per_s"] for r in pg_one)
        print(
            f"  >= 2,000 journaled steps/s on PostgreSQL through one server: {best_rate:.0f}: "
            f"{verdict(best_rate, 2000, above=True)}"
        )
    at100 = [r for r in rows if r["runs"] == 100]
    for r in at100:
        print(
            f"  p99 added per step < 20 ms at 100 runs ({r['setup']}): "
            f"+{r['p99_added_ms']:.2f} ms: {verdict(r['p99_added_ms'], 20)}"
        )
    bad = sum(r["lost"] + r["duplicated"] for r in rows)
    print(f"  lost or duplicated steps: {bad}: {'met' if bad == 0 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    parser.add_argument("--pg", help=f"PostgreSQL URL (default: ${ENV_PG}, else a fresh one)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="concurrent runs per batch, comma-separated (default 100,1000; --quick: 100)",
    )
    parser.add_argument("--turns", type=int, default=5, help="turns per concurrent run")
    # A client process (this file, run by the bench itself).
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args))
        return
    if args.concurrency is None:
        args.concurrency = [100] if args.quick else [100, 1000]
    with tempfile.TemporaryDirectory(prefix="runplane-server-bench-") as tmp:
        asyncio.run(_with_pg(args, Path(tmp)))


if __name__ == "__main__":
    main()
