"""Fixtures for tests that talk to the scripted OpenAI-compatible server on 127.0.0.1.

Registered for every test by tests/conftest.py (`pytest_plugins`); a test asks for `server` and
`api` by name, and calls `clear_endpoint_settings` from an autouse fixture of its own module.
"""

from __future__ import annotations

from collections.abc import Iterator

import agents.models.openai_provider as sdk_openai_provider
import httpx2
import pytest
from openai import DefaultAsyncHttpx2Client
from runplane_openai.settings import ENV_API, ENV_API_KEY, ENV_BASE_URL

from support.openai_server import ScriptedOpenAIServer
from support.weather import API_KEY, APIS, ApiName

__all__ = ["api", "clear_endpoint_settings", "fresh_sdk_http_client", "server"]


def clear_endpoint_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real key or endpoint from the developer's shell, and a fresh SDK HTTP client per test
    (`fresh_sdk_http_client`)."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", ENV_API, ENV_API_KEY, ENV_BASE_URL):
        monkeypatch.delenv(name, raising=False)
    fresh_sdk_http_client(monkeypatch)


def fresh_sdk_http_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's process-wide httpx client, new for this test and keeping no connection open.

    Its pooled connections belong to the event loop that opened them; each test runs in its own
    loop (anyio, `asyncio.run`, or the SDK's run_sync loop), so a connection left over from an
    earlier test would fail with "Event loop is closed". And a pooled connection would outlive
    the test's loop unclosed: its "unclosed transport" ResourceWarning lands, once collected, in
    whichever later test is running (a `pytest.warns` block, say). Without keep-alive, each
    connection is closed, on its loop, once its response is read.
    """
    client = DefaultAsyncHttpx2Client(limits=httpx2.Limits(max_keepalive_connections=0))
    monkeypatch.setattr(sdk_openai_provider, "_http_client", client)


@pytest.fixture(scope="module")
def _shared_server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer(api_key=API_KEY) as s:
        yield s


@pytest.fixture
def server(_shared_server: ScriptedOpenAIServer) -> ScriptedOpenAIServer:
    """One server per module (starting uvicorn per test would dominate the run time), reset."""
    _shared_server.reset()
    return _shared_server


@pytest.fixture(params=APIS)
def api(request: pytest.FixtureRequest) -> ApiName:
    return request.param  # type: ignore[no-any-return]
