"""`runplane worker` tests: a working directory holding the jobs program, and its processes.

Each process (the program the test kills, the starter, the workers) is a real subprocess in the
directory, on one database given by URL; every wait is bounded and every process is stopped by
`cleanup`, pass or fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from runplane.cli import build_app

__all__ = ["TIMEOUT", "Jobs", "wait_until"]

FIXTURES = Path(__file__).resolve().parents[1] / "durable" / "worker"
TIMEOUT = 60.0
_CLI_LOCK = threading.Lock()  # CliRunner swaps sys.stdout: one invocation at a time
CLI = "import sys; from runplane.cli import main; sys.exit(main())"


def wait_until(done: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


class Jobs:
    """The jobs program in `workdir`, on the database `url`; with `server` (a `runplane
    server`'s URL, serving `url`), every process of it keeps its runs behind that server."""

    def __init__(self, workdir: Path, url: str, *, server: str | None = None) -> None:
        self.workdir = workdir
        self.url = url
        self.server = server
        # How the commands name where the runs are.
        self.where = ["--db", url] if server is None else ["--server", server]
        for name in ("jobs.py", "program.py", "starter.py"):
            shutil.copyfile(FIXTURES / name, workdir / name)
        self.procs: list[subprocess.Popen[str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONUNBUFFERED": "1"}
        for name in ("JOBS_BLOCK", "RUNPLANE_BACKEND", "RUNPLANE_SERVER_URL"):
            env.pop(name, None)
        if self.server is None:
            env["RUNPLANE_DATABASE_URL"] = self.url
        else:
            env.pop("RUNPLANE_DATABASE_URL", None)
            env["RUNPLANE_SERVER_URL"] = self.server
        env.update(extra)
        return env

    def _popen(self, args: list[str], **env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=self.workdir,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def program(self, run_id: str, key: str, **env: str) -> subprocess.Popen[str]:
        return self._popen(["program.py", run_id, key], **env)

    def start(self, *keys: str) -> list[str]:
        """Start runs by the agent's reference, in a process of their own; their ids."""
        done = subprocess.run(
            [sys.executable, "starter.py", *keys],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    def worker(
        self, *args: str, modules: tuple[str, ...] = ("jobs",), ready: bool = True
    ) -> subprocess.Popen[str]:
        """`runplane worker jobs --db URL --poll 0.1 ARGS...` (`--server URL` in server mode),
        once it is serving (`ready`)."""
        proc = self._popen(["-c", CLI, "worker", *modules, *self.where, "--poll", "0.1", *args])
        if ready:
            self.wait_ready(proc)
        return proc

    def wait_ready(self, worker: subprocess.Popen[str]) -> None:
        """Until the worker said what it serves (its first line), or exited."""
        assert worker.stderr is not None
        line = worker.stderr.readline()
        assert "runplane worker (pid" in line, line + (
            worker.stderr.read() if worker.poll() else ""
        )

    def stop(self, proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
        """Signal `proc` and wait for its exit; its output (stderr after its first line, when
        `wait_ready` read that)."""
        os.kill(proc.pid, sig)
        return proc.communicate(timeout=TIMEOUT)

    def kill9(self, proc: subprocess.Popen[str]) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGKILL

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=TIMEOUT)

    def server_log(self) -> str:
        """What the server (in server mode) logged: each request it served."""
        return (self.workdir / "server.log").read_text(errors="replace")

    def lines(self, name: str) -> list[str]:
        path = self.workdir / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def marker(self, name: str) -> str | None:
        path = self.workdir / name
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return text if text.endswith("\n") else None

    def show(self, run_id: str, *, as_json: bool = True) -> Any:
        """`runplane runs show RUN_ID [--json] --db URL`, through the real command's app."""
        args = ["runs", "show", run_id, *self.where, *(["--json"] if as_json else [])]
        with _CLI_LOCK:
            result = CliRunner().invoke(build_app(), args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if as_json else result.stdout

    def status(self, run_id: str) -> str:
        return str(self.show(run_id)["run"]["status"])

    def engine_call(self, fn: Callable[[Any], Any]) -> Any:
        """`await fn(engine)` on a read-only engine of the database (of the server)."""
        from runplane_durable.engine import open_engine

        async def go() -> Any:
            engine = open_engine(self.server or self.url, read_only=True)
            try:
                return await fn(engine)
            finally:
                await engine.dispose()

        return asyncio.run(go())
