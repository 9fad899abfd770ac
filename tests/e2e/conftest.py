"""The real local model for the end-to-end tests: one llama-server for the whole session.

On a machine without the cache, the first use builds llama-server and fetches the weights
(minutes, once); progress goes straight to the terminal so CI logs show it is not hung."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from runplane_localmodel import LocalModelServer
from support.endpoint_fixtures import fresh_sdk_http_client


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
    fresh_sdk_http_client(monkeypatch)
