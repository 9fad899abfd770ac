"""The real local model for the end-to-end tests: one llama-server for the whole session.

On a machine without the cache, the first use builds llama-server and fetches the weights
(minutes, once); progress goes straight to the terminal so CI logs show it is not hung."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from agents.models import openai_provider as sdk_openai_provider
from runplane_localmodel import LocalModelServer


@pytest.fixture(scope="session")
def local_model(request: pytest.FixtureRequest) -> Iterator[LocalModelServer]:
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def progress(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"[local model] {line}", flush=True)

    started = time.monotonic()
    server = LocalModelServer(progress=progress, startup_timeout=180)
    with server:
        progress(f"ready for the tests after {time.monotonic() - started:.1f} s")
        yield server


@pytest.fixture(autouse=True)
def _fresh_sdk_http_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK shares one httpx client per process and its pooled keep-alive connections belong
    to the event loop that opened them; each test runs in its own loop (`asyncio.run`, or the
    SDK's run_sync loop), so a connection left over from an earlier test would fail with "Event
    loop is closed" (as in tests/openai/test_openai_backend_http.py)."""
    monkeypatch.setattr(sdk_openai_provider, "_http_client", None)
