"""`runplane model fetch|serve|status`: the local model from the command line."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from .build import BINARY_NAME, LLAMA_CPP_PYTHON_VERSION, binary_path, cached_binary
from .cache import cache_dir
from .server import DEFAULT_MODEL, LocalModelServer, prepare
from .template import template_path
from .weights import QWEN_CODER_05B, cached_weights, weights_path

__all__ = ["build_model_app"]


def _progress(line: str) -> None:
    typer.echo(line, err=True)


def build_model_app() -> typer.Typer:
    """The `model` command group."""
    app = typer.Typer(
        name="model",
        help="A small real model (llama.cpp + Qwen2.5-Coder-0.5B) served offline on 127.0.0.1.",
        no_args_is_help=True,
    )

    @app.command("fetch")
    def fetch_command() -> None:
        """Build llama-server and fetch the weights into the cache (once per machine)."""
        started = time.monotonic()
        artifacts = prepare(progress=_progress)
        typer.echo(f"binary:   {artifacts.binary}")
        typer.echo(f"weights:  {artifacts.weights}")
        typer.echo(f"template: {artifacts.template}")
        typer.echo(
            f"Local model ready ({time.monotonic() - started:.0f} s). "
            "Start it with `runplane model serve`."
        )

    @app.command("serve")
    def serve_command(
        port: Annotated[
            int, typer.Option("--port", "-p", help="Port on 127.0.0.1; 0 picks a free one.")
        ] = 8080,
    ) -> None:
        """Serve the model in the foreground until Ctrl-C (builds/fetches first if needed)."""
        interrupted = False

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal interrupted
            interrupted = True
            raise KeyboardInterrupt

        # Installed explicitly: a shell starting us in the background ignores SIGINT, and
        # Python then would not turn Ctrl-C/kill -INT into KeyboardInterrupt at all.
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        server = LocalModelServer(port=port, progress=_progress)
        try:
            server.start()
            typer.echo(f"Serving {server.model!r} at {server.base_url}")
            typer.echo("Point runplane's openai backend at it with:")
            env = " ".join(f"{k}={v}" for k, v in server.env().items())
            typer.echo(f"  export {env}")
            typer.echo("Press Ctrl-C to stop.")
            status = server.wait()
            if not interrupted and status not in (-signal.SIGINT, 128 + signal.SIGINT):
                tail = server.log_tail()
                server.stop(keep_log=True)
                typer.echo(
                    f"error: {BINARY_NAME} exited on its own with status {status}. "
                    f"Last lines of its log ({server.log_path}):\n{tail}",
                    err=True,
                )
                raise typer.Exit(1)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        typer.echo("Stopped.", err=True)

    @app.command("status")
    def status_command(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Show what is cached and where, without building or downloading anything."""
        binary = cached_binary()
        weights = cached_weights()
        info: dict[str, Any] = {
            "cache_dir": str(cache_dir()),
            "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
            "binary": str(binary or binary_path()),
            "binary_ready": binary is not None,
            "build": _build_info(binary),
            "model": DEFAULT_MODEL,
            "weights": str(weights or weights_path()),
            "weights_ready": weights is not None,
            "weights_sha256": QWEN_CODER_05B.sha256,
            "template": str(template_path()),
        }
        info["ready"] = info["binary_ready"] and info["weights_ready"]
        if as_json:
            typer.echo(json.dumps(info, indent=2))
            return
        typer.echo(f"cache:    {info['cache_dir']}")
        built = f"built ({info['build'].get('version', '?')})" if binary else "not built"
        typer.echo(f"binary:   {built}: {info['binary']}")
        fetched = "verified" if weights else "not fetched"
        typer.echo(f"weights:  {fetched}: {info['weights']}")
        typer.echo(f"template: {info['template']}")
        if info["ready"]:
            typer.echo("ready: `runplane model serve` starts it")
        else:
            typer.echo("not ready: run `runplane model fetch` (a one-time build of minutes)")

    return app


def _build_info(binary: Path | None) -> dict[str, Any]:
    if binary is None:
        return {}
    try:
        loaded = json.loads((binary.parent.parent / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
