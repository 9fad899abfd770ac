"""What guards `runplane server`: the bearer token (401 without, 403 wrong, /healthz open), the
request body limit (413), the refusal to bind a non-loopback address without a token, and the
command itself (`--port 0` announcing its URL, `--max-body-bytes`, the default database)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from runplane_durable import LocalEngine
from runplane_durable.cli.server import loopback
from runplane_durable.records import RunSpec
from runplane_durable.server.app import ServerSettings, create_app
from starlette.applications import Starlette
from starlette.routing import Mount
from support.served_app import served

Writer = Any
TOKEN = "s3cret-t0ken_~+/="  # every character a Bearer token may have


@pytest.fixture(scope="module")
def guarded(store: str) -> Iterator[str]:
    settings = ServerSettings(token=TOKEN, max_body_bytes=100)
    with served(create_app(LocalEngine(store), settings)) as url:
        yield url


def bearer(token: str, scheme: str = "Bearer") -> dict[str, bytes]:
    """The header (a token is printable ASCII: `runplane server` refuses any other)."""
    return {"Authorization": f"{scheme} {token}".encode()}


def _code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["error"]["code"]
    return code


@pytest.mark.parametrize(
    "route", ["/api/v1/runs", "/api/v1/runs/x", "/api/v1/openapi.json", "/metrics", "/api/v1"]
)
def test_every_api_call_needs_the_token(guarded: str, route: str) -> None:
    with httpx.Client(base_url=guarded, timeout=30) as client:
        missing = client.get(route)
        assert _code(missing, 401) == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in missing.json()["error"]["message"]
        assert _code(client.get(route, headers=bearer(TOKEN, "Basic")), 401)
        assert _code(client.get(route, headers={"Authorization": "Bearer"}), 401)
        assert _code(client.get(route, headers=bearer("s3cret")), 403) == "forbidden"
        assert _code(client.get(route, headers=bearer(TOKEN + "x")), 403) == "forbidden"
        answered = client.get(route, headers=bearer(TOKEN))
        assert answered.status_code not in (401, 403), answered.text


def test_the_token_is_read_whole_and_healthz_stays_open(guarded: str) -> None:
    with httpx.Client(base_url=guarded, timeout=30) as client:
        assert client.get("/api/v1/runs", headers=bearer(TOKEN)).status_code == 200
        # The scheme is case-insensitive.
        assert client.get("/api/v1/runs", headers=bearer(TOKEN, "bearer")).status_code == 200
        health = client.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (200, "ok")


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(guarded: str) -> None:
    with httpx.Client(base_url=guarded, timeout=30, headers=bearer(TOKEN)) as client:
        big = b'{"finished_before": ' + b" " * 200 + b"1}"
        assert _code(client.post("/api/v1/prune", content=big), 413) == "too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"finished_before": '
            yield b" " * 200
            yield b"1}"

        streamed = client.post("/api/v1/prune", content=chunks())
        assert _code(streamed, 413) == "too_large"
        assert "--max-body-bytes" in streamed.json()["error"]["message"]
        # Within the limit the body reaches the route (which refuses this one for what it says).
        assert _code(client.post("/api/v1/prune", content=b'{"finished_before": "x"}'), 400)
        # Unauthorized first: the size says nothing to a caller without the token.
        unauthorized = httpx.post(f"{guarded}/api/v1/prune", content=big, timeout=30)
        assert _code(unauthorized, 401) == "unauthorized"


@pytest.mark.parametrize(
    ("host", "is_loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(host: str, is_loopback: bool) -> None:
    assert loopback(host) is is_loopback


def _env(**more: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RUNPLANE_TOKEN", "RUNPLANE_DATABASE_URL")
    }
    return {**env, **more}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_a_non_loopback_bind_without_a_token_is_refused(host: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runplane", "server", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "RUNPLANE_TOKEN" in done.stderr
    assert "reachable from other machines" in " ".join(done.stderr.split())
    assert list(tmp_path.iterdir()) == []  # nothing was opened or created


def test_a_token_no_client_could_send_is_refused_at_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runplane", "server", "--port", "0"],
        capture_output=True,
        text=True,
        env=_env(RUNPLANE_TOKEN="sécret", COLUMNS="400"),  # the message on one line
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "only printable ASCII without spaces" in " ".join(done.stderr.split())
    assert list(tmp_path.iterdir()) == []  # nothing was opened or created


def _listening(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stderr is not None
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = re.fullmatch(r"runplane server listening on (http://127\.0\.0\.1:\d+)\n", line)
        if found:
            return found.group(1)
    raise AssertionError("the server never said where it listens:\n" + "".join(seen))


def test_the_command_serves_the_embedded_default_database_on_any_free_port(
    tmp_path: Path,
) -> None:
    """Without --database it serves the database a program in its directory uses."""

    async def embedded_program() -> None:  # a program run in tmp_path, with no settings
        engine = LocalEngine(str(tmp_path / ".runplane" / "runplane.db"))
        session = await engine.open_run(
            RunSpec("made-here", "echo", {}, "fp", {}), lease_seconds=30
        )
        await session.finish("completed", final_output={"json": 1})
        await session.close()
        await engine.dispose()

    asyncio.run(embedded_program())
    process = subprocess.Popen(
        [sys.executable, "-m", "runplane", "server", "--port", "0", "--max-body-bytes", "64"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_env(RUNPLANE_TOKEN=TOKEN),
        cwd=tmp_path,
    )
    try:
        url = _listening(process, time.monotonic() + 120)
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/healthz").json()["engine"].endswith(".runplane/runplane.db")
            assert client.get("/api/v1/runs").status_code == 401
            runs = client.get("/api/v1/runs", headers=bearer(TOKEN)).json()["runs"]
            assert [r["id"] for r in runs] == ["made-here"]
            too_big = client.post("/api/v1/prune", headers=bearer(TOKEN), content=b"1" * 65)
            assert _code(too_big, 413) == "too_large"
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    # uvicorn shuts down gracefully (the app's lifespan ends, disposing of the engine), then
    # re-raises the signal, so the exit status is SIGTERM's.
    assert process.returncode == -signal.SIGTERM
    assert "Application shutdown complete" in rest


def test_mounted_under_a_prefix_the_token_and_raw_paths_still_hold(
    store: str, writer: Writer
) -> None:
    made = writer.run(f"mounted/{uuid.uuid4().hex[:6]}")
    inner = create_app(LocalEngine(store), ServerSettings(token=TOKEN))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with inner.router.lifespan_context(inner):
            yield

    outer = Starlette(routes=[Mount("/runplane", app=inner)], lifespan=lifespan)
    with served(outer) as url, httpx.Client(base_url=f"{url}/runplane", timeout=30) as client:
        path = f"/api/v1/runs/{quote(made.id, safe='')}"
        assert _code(client.get(path), 401) == "unauthorized"
        assert client.get(path, headers=bearer(TOKEN)).json()["id"] == made.id
        assert _code(client.get(path + "%2Fx", headers=bearer(TOKEN)), 404) == "run_not_found"
        assert client.get("/healthz").status_code == 200


def test_every_durable_error_code_has_an_http_status() -> None:
    """A new error code must say what HTTP status it answers with, not fall back to a 500."""
    from runplane_durable import errors
    from runplane_durable.server.responses import _STATUS

    assert set(errors._BY_CODE) - set(_STATUS) == set()
