"""How long `runplane` commands take to start, against Python itself and importing the SDK.

Each command runs N times as a fresh process; the median wall time is reported (and the fastest,
the best estimate of an idle machine on a shared one). `runs list` reads a real database holding
one finished run, made first by a scripted durable run. Commands that run no agent must not
import the Agents SDK: a line per command says whether `agents` was imported.

    python bench/startup.py              # 15 runs of each
    python bench/startup.py --runs 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETUP = """
from agents import Agent
from agents.testing import ScriptedModel, assistant_message
from runplane_durable import Runner, run_id
agent = Agent(name="bench", model=ScriptedModel([[assistant_message("done")]]))
with run_id("startup-bench"):
    Runner.run_sync(agent, "go")
"""
# The same command in process, to see what it imported (not timed).
PROBE = """
import sys
from runplane.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("\\nSDK imported:", "agents" in sys.modules, file=sys.stderr)
"""


def _runplane() -> list[str]:
    found = shutil.which("runplane", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "runplane"]


def commands() -> dict[str, tuple[list[str], list[str] | None]]:
    """Label -> (argv, the runplane arguments, or None for the reference commands)."""
    runplane = _runplane()
    cli = {
        "runplane --help": ["--help"],
        "runplane backends": ["backends"],
        "runplane runs list": ["runs", "list"],
    }
    return {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        'python -c "import agents"': ([sys.executable, "-c", "import agents"], None),
        **{label: ([*runplane, *args], args) for label, args in cli.items()},
    }


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


def imports_sdk(args: list[str], env: dict[str, str], cwd: Path) -> bool:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "SDK imported: True" in proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="processes per command")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="runplane-startup-") as tmp:
        cwd = Path(tmp)
        env = {
            **os.environ,
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
            "RUNPLANE_DATABASE_URL": f"sqlite:///{cwd / 'runs.db'}",
        }
        subprocess.run(
            [sys.executable, "-c", SETUP], env=env, cwd=cwd, check=True, capture_output=True
        )
        print(f"{args.runs} runs each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        print(f"{'command':<28} {'median':>8} {'fastest':>8}  imports the SDK")
        for label, (argv, cli_args) in commands().items():
            timed(argv, env, cwd)  # warm the OS file cache
            times = [timed(argv, env, cwd) for _ in range(args.runs)]
            shown = (
                "-" if cli_args is None else ("YES" if imports_sdk(cli_args, env, cwd) else "no")
            )
            print(f"{label:<28} {statistics.median(times):>7.3f}s {min(times):>7.3f}s  {shown}")


if __name__ == "__main__":
    main()
