"""Fixtures of the approval tests: where the runs are (SQLite, a fresh PostgreSQL database, or a
`runplane server` on either), and a working directory holding the payments program."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.durable import fresh_pg_database, sqlite_url
from support.durable_server import running_server
from support.workers import TIMEOUT

HERE = Path(__file__).resolve().parent
CLI = "import sys; from runplane.cli import main; sys.exit(main())"


@dataclass
class Payments:
    """The payments program in `workdir`, its runs on `url` (behind `server` when set)."""

    workdir: Path
    url: str
    server: str | None = None
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("payments.py", "program.py"):
            shutil.copyfile(HERE / name, self.workdir / name)

    @property
    def where(self) -> list[str]:
        return ["--db", self.url] if self.server is None else ["--server", self.server]

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONUNBUFFERED": "1"}
        for name in ("RUNPLANE_BACKEND", "RUNPLANE_SERVER_URL", "RUNPLANE_DATABASE_URL"):
            env.pop(name, None)
        if self.server is None:
            env["RUNPLANE_DATABASE_URL"] = self.url
        else:
            env["RUNPLANE_SERVER_URL"] = self.server
        env.update(extra)
        return env

    def program(self, run_id: str, mode: str) -> dict[str, Any]:
        done = self.run([sys.executable, "program.py", run_id, mode])
        return dict(json.loads(done.stdout.splitlines()[-1]))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-c", CLI, *args, *self.where], check=check)

    def run(self, command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command,
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def popen(self, command: list[str], **env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def lines(self, name: str) -> list[str]:
        path = self.workdir / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def show(self, run_id: str) -> dict[str, Any]:
        return dict(json.loads(self.cli("runs", "show", run_id, "--json").stdout))

    def show_approvals(self, run_id: str) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("runs", "approvals", run_id, "--json").stdout)["approvals"])

    def event_types(self, run_id: str) -> list[str]:
        """The run's event types, read by an engine of this process (read-only)."""
        from runplane_durable.engine import open_engine

        async def go() -> list[str]:
            engine = open_engine(self.server or self.url, read_only=True)
            try:
                return [e.type for e in await engine.list_events(run_id)]
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=TIMEOUT)


@pytest.fixture(params=["sqlite", "postgresql", "server-sqlite", "server-postgresql"])
def payments(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Payments]:
    kind = str(request.param)
    urls = [sqlite_url(tmp_path)] if kind.endswith("sqlite") else fresh_pg_database()
    for url in urls:
        if not kind.startswith("server"):
            made = Payments(tmp_path, url)
            try:
                yield made
            finally:
                made.cleanup()
            continue
        with running_server(url, tmp_path / "server.log") as server:
            made = Payments(tmp_path, url, server.url)
            try:
                yield made
            finally:
                made.cleanup()
