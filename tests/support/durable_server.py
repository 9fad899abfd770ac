"""`runplane server` as a real subprocess: uvicorn on a free loopback port, over a database.

Tests point programs at it with RUNPLANE_SERVER_URL, kill it with SIGKILL and start it again on
the same port (a client's URL does not change when its server is restarted). Every wait is
bounded, and `stop` never leaves the process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

__all__ = ["STARTUP_SECONDS", "Server", "running_server", "server_env"]

STARTUP_SECONDS = 60.0  # importing the server on a busy 2-core machine


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def server_env(url: str) -> dict[str, str]:
    """The environment of a program whose runs go to the server at `url`."""
    env = {**os.environ, "RUNPLANE_SERVER_URL": url, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    env.pop("RUNPLANE_DATABASE_URL", None)
    return env


class Server:
    """One `runplane server --database DATABASE`, its log in `log`; bound to `host` (a
    non-loopback address needs a `token`, as the server itself says)."""

    def __init__(
        self,
        database: str,
        log: Path,
        *,
        token: str | None = None,
        host: str = "127.0.0.1",
        args: Sequence[str] = (),
    ) -> None:
        self.database = database
        self.log = log
        self.token = token
        self.host = host
        self.args = list(args)  # more options of `runplane server`
        self.port = _free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start it (again, on the same port) and wait until /healthz answers; its URL."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("RUNPLANE_SERVER_URL", None)
        env.pop("RUNPLANE_TOKEN", None)
        if self.token is not None:
            env["RUNPLANE_TOKEN"] = self.token
        command = [sys.executable, "-m", "runplane", "server", "--port", str(self.port)]
        command += ["--host", self.host]
        command += ["--database", self.database, *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        self._wait_healthy()
        return self.url

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"runplane server exited ({self.proc.returncode}):\n{self.log.read_text()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"runplane server not up within {STARTUP_SECONDS} s:\n{self.log}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no answer to what it was doing."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


@contextlib.contextmanager
def running_server(
    database: str,
    log: Path,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    args: Sequence[str] = (),
) -> Iterator[Server]:
    server = Server(database, log, token=token, host=host, args=args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
