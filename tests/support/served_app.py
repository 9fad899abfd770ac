"""An ASGI app served by a real uvicorn on 127.0.0.1 (an ephemeral port), in a thread of the test
process, stopped by the context manager: for tests of `runplane server`'s app that need a real
HTTP server (raw paths as uvicorn passes them, streamed responses, disconnects)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

__all__ = ["served"]


@contextmanager
def served(app: Any, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` (its lifespan on) and yield its root URL, http://127.0.0.1:PORT."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="served-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start the app (see the log above)")
            time.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("uvicorn did not stop within the timeout")
