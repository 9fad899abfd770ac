"""Instructions a backend adds per step, counted by valgrind: repeatable on a noisy machine.

Wall-clock medians on a shared VM can move by more than the cost being measured. Callgrind counts
the instructions a process executes, which does not depend on what else the machine is doing.
For each runner, one process runs a warm-up and then one scripted run of N turns; the difference
between two turn counts, divided by the turns between them, is the cost of one step with the
fixed costs (imports, warm-up, opening a run) cancelled out. Kernel time (the journal's file
writes) is not counted: `runner_overhead.py` measures time.

    python bench/instructions.py                          # durable vs the SDK, 10 and 100 turns
    python bench/instructions.py --backends openai,durable --turns 10,50

Keep the two turn counts far apart: a garbage collection that lands in one process and not in
the other adds millions of instructions, spread over the steps between them (at 2 and 4 turns
that swamps the step; at 10 and 100 it is a rounding error). Needs valgrind (Debian:
`apt-get install valgrind`); each process takes minutes under it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = """
import asyncio, sys
sys.path.insert(0, {bench!r})
from runner_overhead import backend_run, make_agent, sdk_run
name, turns = sys.argv[1], int(sys.argv[2])
run = sdk_run() if name == "sdk" else backend_run(name)
async def main():
    await run(make_agent(3), False, 3)
    await run(make_agent(turns), False, turns)
asyncio.run(main())
"""


def count(runner: str, turns: int, workdir: Path) -> int:
    """Instructions of one process: imports, a warm-up, and one run of `turns` turns."""
    out = workdir / f"callgrind.{runner}.{turns}"
    env = {
        **os.environ,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "RUNPLANE_DATABASE_URL": str(workdir / f"{runner}-{turns}.db"),
    }
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            CHILD.format(bench=str(HERE)),
            runner,
            str(turns),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"{runner} at {turns} turns failed under valgrind:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="durable")
    parser.add_argument("--turns", default="10,100", help="two turn counts, low,high")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    low, high = (int(t) for t in args.turns.split(","))
    if not 0 < low < high:
        raise SystemExit("--turns takes two turn counts, the smaller first: --turns 10,100")
    runners = ["sdk", *(n for n in args.backends.split(",") if n)]
    with tempfile.TemporaryDirectory(prefix="runplane-callgrind-") as tmp:
        jobs = [(r, t) for r in runners for t in (low, high)]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            found = pool.map(lambda job: count(job[0], job[1], Path(tmp)), jobs)
            counts = dict(zip(jobs, found, strict=True))
    per_step = {r: (counts[(r, high)] - counts[(r, low)]) / (high - low) for r in runners}
    base = per_step["sdk"]
    print(f"instructions per step, turns {low + 1}..{high} (valgrind callgrind)")
    print(f"{'runner':>8} {'M instr/step':>13} {'ratio':>6} {'added M/step':>13}")
    for runner in runners:
        print(
            f"{runner:>8} {per_step[runner] / 1e6:>13.2f} {per_step[runner] / base:>6.3f} "
            f"{(per_step[runner] - base) / 1e6:>+13.2f}"
        )


if __name__ == "__main__":
    main()
