"""`LocalModelServer`: a real OpenAI-compatible model on 127.0.0.1 for tests, demos and offline
work, with the same wire formats (Chat Completions and Responses) as a hosted endpoint.

    with LocalModelServer(progress=print) as server:   # builds/fetches on first use
        client = AsyncOpenAI(base_url=server.base_url, api_key=server.api_key)
        ...  # model=server.model

The server is a child process in the caller's process group, so Ctrl-C or a group kill stops it
too; `stop()` (or leaving the `with` block) terminates it and waits for it."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from ._proc import Progress, quiet, tail
from .build import BINARY_NAME, cached_binary, ensure_binary, ensure_toolchain
from .errors import LocalModelError
from .template import template_path
from .weights import QWEN_CODER_05B, WeightsSpec, cached_weights, ensure_weights

__all__ = [
    "DEFAULT_MODEL",
    "Artifacts",
    "LocalModelServer",
    "prepare",
]

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
"""The name the server reports and accepts (`--alias`)."""

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Artifacts:
    """The three files a server needs."""

    binary: Path
    weights: Path
    template: Path


def prepare(
    *,
    cache: Path | None = None,
    progress: Progress = quiet,
    spec: WeightsSpec = QWEN_CODER_05B,
    fetch: bool = True,
) -> Artifacts:
    """Everything cached, building and downloading what is missing (unless `fetch` is false).

    Cheap checks come first: a missing compiler is reported before 500 MB are downloaded."""
    binary = cached_binary(cache)
    weights = cached_weights(spec, cache)
    if not fetch and (binary is None or weights is None):
        missing = " and ".join(
            what for what, found in (("llama-server", binary), ("weights", weights)) if not found
        )
        raise LocalModelError(
            f"The local model is not set up on this machine ({missing} missing). "
            "Run `runplane model fetch` first (a one-time build of several minutes)."
        )
    if binary is None:
        ensure_toolchain(progress=progress)
    if weights is None:
        weights = ensure_weights(spec, cache=cache, progress=progress)
    else:
        progress(f"weights: cached at {weights}")
    if binary is None:
        binary = ensure_binary(cache=cache, progress=progress)
    else:
        progress(f"{BINARY_NAME}: cached at {binary}")
    return Artifacts(binary=binary, weights=weights, template=template_path(cache))


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise LocalModelError(
                    f"Port {port} on {host} is already in use (or not allowed). Stop whatever "
                    "listens there, pick another port with --port N, or use --port 0 for a free "
                    "one."
                ) from None
            raise


class LocalModelServer:
    """A `llama-server` child process serving the local model; a context manager.

    `port=0` picks a free port. `binary`, `weights` and `template` default to the cached files
    (built or fetched on first use unless `fetch=False`); tests pass a fake binary."""

    api_key = "local"
    """Any key works; the openai client just refuses to start without one."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = LOCALHOST,
        model: str = DEFAULT_MODEL,
        binary: Path | None = None,
        weights: Path | None = None,
        template: Path | None = None,
        context_size: int = 8192,
        startup_timeout: float = 120.0,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        cache: Path | None = None,
        fetch: bool = True,
        progress: Progress = quiet,
    ) -> None:
        self.host = host
        self.model = model
        self.context_size = context_size
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self._requested_port = port
        self._binary = binary
        self._weights = weights
        self._template = template
        self._cache = cache
        self._fetch = fetch
        self._progress = progress
        self._log_path = log_path
        self._keep_log = log_path is not None
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalModelError("The local model server is not running; call start() first.")
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`, e.g. http://127.0.0.1:8080/v1."""
        return f"{self.root_url}/v1"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self, api: str = "chat_completions") -> dict[str, str]:
        """The variables that point runplane's `openai` backend at this server."""
        return {"RUNPLANE_OPENAI_BASE_URL": self.base_url, "RUNPLANE_OPENAI_API": api}

    # -- lifecycle -------------------------------------------------------------------------

    def command(self, binary: Path, weights: Path, template: Path, port: int) -> list[str]:
        """The llama-server command line: jinja template for tool calls, temperature 0 by default
        because a 0.5B model only calls tools reliably without sampling noise."""
        return [
            str(binary),
            "--model",
            str(weights),
            "--alias",
            self.model,
            "--jinja",
            "--chat-template-file",
            str(template),
            "--host",
            self.host,
            "--port",
            str(port),
            "--ctx-size",
            str(self.context_size),
            "--parallel",
            "1",
            "--temp",
            "0",
            *self.extra_args,
        ]

    def start(self) -> LocalModelServer:
        """Start the server and wait until /health says the model is loaded."""
        if self._process is not None:
            raise LocalModelError("This LocalModelServer is already started.")
        binary, weights, template = self._binary, self._weights, self._template
        if binary is None or weights is None:
            artifacts = prepare(cache=self._cache, progress=self._progress, fetch=self._fetch)
            binary = binary or artifacts.binary
            weights = weights or artifacts.weights
            template = template or artifacts.template
        template = template or template_path(self._cache)
        if self._requested_port == 0:
            port = _free_port(self.host)
        else:
            _check_port_free(self.host, self._requested_port)
            port = self._requested_port
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="runplane-llama-server-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = self.command(binary, weights, template, port)
        self._progress(f"server: starting {BINARY_NAME} on {self.host}:{port}")
        try:
            self._process = subprocess.Popen(
                cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            self._close_log()
            raise LocalModelError(
                f"Could not start {binary}: {exc}. Run `runplane model fetch` to (re)build it."
            ) from exc
        self._port = port
        try:
            self._wait_ready()
        except BaseException:
            self.stop(keep_log=True)
            raise
        self._progress(f"server: ready at {self.base_url} (model {self.model!r})")
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        started = time.monotonic()
        deadline = started + self.startup_timeout
        health = f"{self.root_url}/health"
        while True:
            status = self._process.poll()
            if status is not None:
                raise LocalModelError(self._early_exit_message(status))
            try:
                with urllib.request.urlopen(health, timeout=2) as reply:
                    body = json.loads(reply.read() or b"{}")
                    if reply.status == 200 and body.get("status", "ok") == "ok":
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass  # not listening yet, or 503 while the model loads
            if time.monotonic() > deadline:
                raise LocalModelError(
                    f"{BINARY_NAME} did not become ready on {health} within "
                    f"{self.startup_timeout:.0f} s; it was stopped. Last lines of its log "
                    f"({self._log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def _early_exit_message(self, status: int) -> str:
        log_tail = self.log_tail()
        hint = "Run `runplane model status` to check the cached files."
        lowered = log_tail.lower()
        if "bind" in lowered or "address already in use" in lowered:
            hint = (
                f"Port {self._port} looks taken: pick another with --port N, or --port 0 "
                "for a free one."
            )
        return (
            f"{BINARY_NAME} exited with status {status} before it was ready. {hint} "
            f"Last lines of its log ({self._log_path}):\n{log_tail}"
        )

    def log_tail(self) -> str:
        """The last lines of the server's log, for error messages."""
        if self._log is not None:
            self._log.flush()
        return tail(self._log_path, 20) if self._log_path else "    (no log)"

    def wait(self) -> int:
        """Block until the server exits (by itself or a signal) and return its exit status."""
        if self._process is None:
            raise LocalModelError("The local model server is not running; call start() first.")
        return self._process.wait()

    def stop(self, *, keep_log: bool | None = None) -> None:
        """Terminate the server (kill it if it ignores that for 10 s) and wait for it. The log is
        deleted after a clean stop unless the caller chose its path."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()
        keep = self._keep_log if keep_log is None else keep_log or self._keep_log
        if not keep and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"LocalModelServer({where}, model={self.model!r})"
