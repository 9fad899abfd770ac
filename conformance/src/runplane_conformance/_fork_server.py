"""The durability profile's fork server: `python -m runplane_conformance._fork_server`.

Importing the Agents SDK and a backend takes about a second; the profile needs dozens of processes
that it kills with SIGKILL. So one server process imports them once and forks a fresh child per
job: each child is a real process of its own (its own pid, its own database connections, opened
after the fork), dies as any process does when killed, and leaves its parent unharmed. The parent
opens no backend, so a child shares no connection, thread or event loop with anything. After its
first child, it imports the modules that child imported (a backend's runtime, its database
driver): imports only, never an instance, and the later children start about three times faster.

Protocol, one JSON object per line: `{"ready": true}` on stdout once the imports are done; then
a job on stdin, and on stdout `{"pid": N}` once the child is
forked, then `{"pid": N, "signal": S, "code": C}` when it is gone (`signal` set if a signal
killed it, else the exit `code`). The child's own stdout goes to stderr, like its tracebacks.
The server exits at the end of its input.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from pathlib import Path


def _child(job: dict[str, object], modules: Path | None) -> None:
    os.dup2(2, 1)  # the child's prints must not mix with the protocol on stdout
    code = 0
    try:
        from . import _durable_program

        _durable_program.execute(job)
        if modules is not None:
            modules.write_text("\n".join(sorted(sys.modules)), encoding="utf-8")
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    protocol = sys.stdout
    import agents  # noqa: F401  (imported once, for every child)

    import runplane

    runplane.backends()  # plugins' entry points loaded; no backend is constructed
    from . import _durable_program  # noqa: F401

    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    warm: Path | None = Path(f"fork-server-modules-{os.getpid()}.txt")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(job, warm)
        protocol.write(json.dumps({"pid": pid}) + "\n")
        protocol.flush()
        _, status = os.waitpid(pid, 0)
        signalled = os.WIFSIGNALED(status)
        done = {
            "pid": pid,
            "signal": os.WTERMSIG(status) if signalled else None,
            "code": None if signalled else os.waitstatus_to_exitcode(status),
        }
        protocol.write(json.dumps(done) + "\n")
        protocol.flush()
        if warm is not None and warm.exists():
            _import(warm.read_text("utf-8").split())
            warm.unlink()
            warm = None


def _import(names: list[str]) -> None:
    """Import what a child imported; a module that cannot be imported by name is left out."""
    for name in names:
        if name not in sys.modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)


if __name__ == "__main__":
    main()
