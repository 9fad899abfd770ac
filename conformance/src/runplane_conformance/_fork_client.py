"""The pytest side of the fork server (`_fork_server`): start it, hand it jobs, bound every wait.

The server runs with the caller's environment as it is (RUNPLANE_DATABASE_URL, a server URL, a
token: whatever selects where the backend keeps its runs) in a working directory of its own, so a
backend's default local store lands there and not in the project under test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["ForkServer", "Outcome"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one child ended, what it wrote, and what it printed meanwhile."""

    pid: int
    signal: int | None
    code: int | None
    output: dict[str, Any] | None
    log: str
    timed_out: bool = False

    @property
    def killed(self) -> bool:
        return self.signal == signal.SIGKILL and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            ended = "did not finish in time and was killed"
        elif self.signal is not None:
            ended = f"was killed by signal {self.signal}"
        else:
            ended = f"exited with code {self.code}"
        tail = self.log.strip()[-1500:]
        return f"process {self.pid} {ended}" + (f"; its output ended with:\n{tail}" if tail else "")


class ForkServer:
    """One `_fork_server` process; `run(job)` forks a child for the job and waits for it."""

    def __init__(self, workdir: Path, timeout: float) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.log_path = workdir / "fork-server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed by close())
        self._jobs = 0
        self._buffer = b""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runplane_conformance._fork_server"],
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,  # its own process group: close() can end it with its child
        )
        assert self.proc.stdout is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        if self._line(time.monotonic() + timeout) is None:  # {"ready": true}: imports done
            self.close()
            raise RuntimeError(
                f"the durability profile's fork server was not ready within {timeout}s; its "
                "output ended with:\n" + self._log_since(0)[-3000:]
            )

    def _line(self, deadline: float) -> dict[str, Any] | None:
        """The server's next message, or None once `deadline` passed."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._exited()
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def _exited(self) -> RuntimeError:
        return RuntimeError(
            "the durability profile's fork server exited; its output ended with:\n"
            + self._log_since(0)[-3000:]
        )

    def _log_since(self, offset: int) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def run(self, job: dict[str, Any]) -> Outcome:
        """Run `job` in a fresh child; a child still running after the timeout is killed."""
        assert self.proc.stdin is not None
        self._jobs += 1
        out = self.workdir / f"job-{self._jobs}.json"
        offset = self._log.tell()
        try:
            self.proc.stdin.write((json.dumps({**job, "out": str(out)}) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise self._exited() from exc
        deadline = time.monotonic() + self.timeout
        started = self._line(deadline)
        if started is None:
            raise RuntimeError(f"the fork server did not start a child within {self.timeout}s")
        pid = int(started["pid"])
        done = self._line(deadline)
        timed_out = done is None
        if done is None:
            os.kill(pid, signal.SIGKILL)
            done = self._line(time.monotonic() + self.timeout)
            if done is None:
                raise RuntimeError(f"child {pid} of the fork server outlived a SIGKILL")
        output = json.loads(out.read_text("utf-8")) if out.exists() else None
        return Outcome(
            pid, done["signal"], done["code"], output, self._log_since(offset), timed_out
        )

    def close(self) -> None:
        """End the server (it exits at the end of its input, once its child is done); if it does
        not within the timeout, kill its process group: the server and the child it waits for."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # the server died first
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
