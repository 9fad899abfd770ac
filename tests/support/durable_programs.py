"""Run `crash_program.py` as real processes: start it, wait for it to hang, kill -9, inspect.

Crash tests need a process that really dies (no `finally`, no atexit, no lease release), so
everything here is a subprocess with its working directory in a temp dir, where the program's
logs and its `.runplane/` database land.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.durable_server import Server

__all__ = ["TIMEOUT", "CrashProgram", "final_output"]

SOURCE = Path(__file__).with_name("crash_program.py")
TIMEOUT = 60.0  # for any one process or wait: bounded even when something hangs


class CrashProgram:
    """The program copied into `workdir`, and every process started from it (for cleanup).

    `served=True` runs it in server mode: a `runplane server` subprocess serves the workdir's
    database, and the program reaches it through RUNPLANE_SERVER_URL alone.
    """

    def __init__(self, workdir: Path, *, served: bool = False, source: Path = SOURCE) -> None:
        self.workdir = workdir
        self.script = workdir / "program.py"
        shutil.copyfile(source, self.script)
        self.procs: list[subprocess.Popen[str]] = []
        self.server: Server | None = None
        if served:
            self.serve(f"sqlite:///{self.db}")

    def serve(self, database: str) -> None:
        """Start a server on `database`; the program's runs go through it from now on."""
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.server = Server(database, self.workdir / "server.log")
        self.server.start()

    @property
    def db(self) -> Path:
        return self.workdir / ".runplane" / "runplane.db"

    def _env(self, block: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONUNBUFFERED": "1"}
        for name in ("RUNPLANE_DATABASE_URL", "CRASH_BLOCK", "CRASH_PROMPT", "RUNPLANE_BACKEND"):
            env.pop(name, None)  # the run must use the temp dir's own database
        env.pop("RUNPLANE_SERVER_URL", None)
        if self.server is not None:
            env["RUNPLANE_SERVER_URL"] = self.server.url
        if block is not None:
            env["CRASH_BLOCK"] = block
        env.update(extra or {})
        return env

    def start(
        self,
        mode: str,
        run_id: str,
        *args: str,
        block: str,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        """Start a run whose tool `block` ("tool_b:mid") will hang; see `wait_started`. `args`
        and `env` go to the program as they are."""
        (self.workdir / "started").unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, str(self.script), mode, run_id, *args],
            cwd=self.workdir,
            env=self._env(block, env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, mode: str, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the program to its end (killed if it outlives TIMEOUT)."""
        return subprocess.run(
            [sys.executable, str(self.script), mode, run_id, *args],
            cwd=self.workdir,
            env=self._env(None),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def wait_started(self, proc: subprocess.Popen[str]) -> str:
        """Wait until the blocking tool is hanging; its marker says which tool and where."""
        marker = self.workdir / "started"
        self._wait(proc, lambda: marker.exists() and marker.read_text("utf-8").endswith("\n"))
        where, pid = marker.read_text(encoding="utf-8").split()
        assert int(pid) == proc.pid
        return where

    def wait_line(self, proc: subprocess.Popen[str], name: str, line: str, after: int) -> None:
        """Wait until the live process has appended `line` to log `name` (past line `after`)."""
        self._wait(proc, lambda: line in self.lines(name)[after:])

    def _wait(self, proc: subprocess.Popen[str], done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not done():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(
                    f"the program exited ({proc.returncode}) while it should hang:\n{out}\n{err}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not get there within {TIMEOUT} s")
            time.sleep(0.02)

    def kill9(self, proc: subprocess.Popen[str]) -> None:
        """SIGKILL, then reap: the process gets no chance to release its lease or clean up."""
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGKILL

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=TIMEOUT)
        if self.server is not None:
            self.server.stop()

    def lines(self, name: str) -> list[str]:
        path = self.workdir / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def model_calls(self) -> list[int]:
        """Ordinals of the real model calls, in order, over every process so far."""
        return [int(line.split()[0]) for line in self.lines("model.log")]

    def tool_calls(self) -> list[str]:
        """`name call_id` of every real tool execution, in order, over every process so far."""
        return [" ".join(line.split()[:2]) for line in self.lines("calls.log")]

    def show(self, run_id: str) -> dict[str, Any]:
        """`runplane runs show RUN_ID --json --db ...`, as a process of its own: crash chains
        run in background threads while other tests go on, and typer's CliRunner swaps the
        process's sys.stdout, which no lock of one module can make safe for all of them."""
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "runplane",
                "runs",
                "show",
                run_id,
                "--json",
                "--db",
                str(self.db),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        data: dict[str, Any] = json.loads(proc.stdout)
        return data


def final_output(proc: subprocess.CompletedProcess[str]) -> Any:
    """The final output a finished program printed (its last stdout line)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])["final_output"]
