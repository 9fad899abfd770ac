"""Per-step cost of running through runplane, as a ratio against the SDK's own runner.

Scripted runs (the SDK's ScriptedModel; no network) of N turns, each turn a tool call, are run on
the SDK's `AgentRunner` directly ("sdk") and on each named runplane backend, interleaved so that
machine noise hits all of them alike. Prints the median per-step time, the ratio to "sdk", the
milliseconds added per step and the peak traced memory of one run. The last column is the
milliseconds added per step between the fastest run of each: on a noisy machine (a shared VM),
where the median moves by more than the cost being measured, the fastest of several runs is what
the code costs when nothing else interferes.

    python bench/runner_overhead.py                    # openai backend, 1/10/100/500 turns
    python bench/runner_overhead.py --backends openai,durable --turns 10,100 --repeats 7
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
# The durable backend's journal goes to a throwaway SQLite file unless one is named.
if not os.environ.get("RUNPLANE_DATABASE_URL"):
    os.environ["RUNPLANE_DATABASE_URL"] = os.path.join(
        tempfile.mkdtemp(prefix="runplane-bench-"), "bench.db"
    )

from agents import Agent, function_tool
from agents.run import AgentRunner
from agents.testing import ScriptedModel, assistant_message, function_call

import runplane


@function_tool
def step(n: int) -> int:
    """A trivial tool: the benchmark measures the runner, not the tool."""
    return n + 1


def make_agent(turns: int) -> Agent[Any]:
    script: list[Any] = [
        [function_call("step", {"n": i}, call_id=f"call_{i}")] for i in range(turns - 1)
    ]
    script.append([assistant_message("done")])
    return Agent(name="bench", tools=[step], model=ScriptedModel(script))


RunFn = Callable[[Agent[Any], bool, int], Awaitable[Any]]


def sdk_run() -> RunFn:
    runner = AgentRunner()

    async def go(agent: Agent[Any], streamed: bool, turns: int) -> Any:
        if streamed:
            result = runner.run_streamed(agent, "go", max_turns=turns + 1)
            async for _ in result.stream_events():
                pass
            return result
        return await runner.run(agent, "go", max_turns=turns + 1)

    return go


def backend_run(name: str) -> RunFn:
    Runner = runplane.runner(name)

    async def go(agent: Agent[Any], streamed: bool, turns: int) -> Any:
        if streamed:
            result = Runner.run_streamed(agent, "go", max_turns=turns + 1)
            async for _ in result.stream_events():
                pass
            return result
        return await Runner.run(agent, "go", max_turns=turns + 1)

    return go


async def timed(fn: RunFn, turns: int, streamed: bool) -> float:
    agent = make_agent(turns)
    gc.collect()
    started = time.perf_counter()
    result = await fn(agent, streamed, turns)
    elapsed = time.perf_counter() - started
    assert result.final_output == "done", result.final_output
    return elapsed


async def peak_memory(fn: RunFn, turns: int, streamed: bool) -> int:
    agent = make_agent(turns)
    gc.collect()
    tracemalloc.start()
    try:
        await fn(agent, streamed, turns)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="openai")
    parser.add_argument("--turns", default="1,10,100,500")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    names = [n for n in args.backends.split(",") if n]
    runs: dict[str, RunFn] = {"sdk": sdk_run(), **{n: backend_run(n) for n in names}}
    turn_counts = [int(t) for t in args.turns.split(",")]

    print(f"runplane runner overhead; {os.cpu_count()} cores; repeats={args.repeats}")
    header = (
        f"{'mode':9} {'turns':>5} {'runner':>8} {'ms/step':>9} {'ratio':>6} "
        f"{'+ms/step':>9} {'peak MiB':>9} {'best +ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for streamed in (False, True):
        for turns in turn_counts:
            samples: dict[str, list[float]] = {k: [] for k in runs}
            await timed(runs["sdk"], min(turns, 3), streamed)  # warm-up imports and caches
            for _ in range(args.repeats):
                for key, fn in runs.items():
                    samples[key].append(await timed(fn, turns, streamed))
            base = statistics.median(samples["sdk"]) / turns
            best_base = min(samples["sdk"]) / turns
            for key, fn in runs.items():
                per_step = statistics.median(samples[key]) / turns
                best_added = min(samples[key]) / turns - best_base
                peak = await peak_memory(fn, turns, streamed)
                print(
                    f"{'streamed' if streamed else 'run':9} {turns:>5} {key:>8} "
                    f"{per_step * 1000:>9.3f} {per_step / base:>6.2f} "
                    f"{(per_step - base) * 1000:>+9.3f} {peak / 2**20:>9.1f} "
                    f"{best_added * 1000:>+9.3f}"
                )


if __name__ == "__main__":
    asyncio.run(main())
