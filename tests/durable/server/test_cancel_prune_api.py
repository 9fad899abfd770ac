"""POST /api/v1/runs/{run_id}/cancel and POST /api/v1/prune, which call the engine's
`cancel_run(run_id, mode=)` and `prune(finished_before=)` (engineer C adds them to `Engine`):
their answers, their bodies fuzzed (hypothesis) and the routes fuzzed from the OpenAPI document
(schemathesis). The refusals of malformed bodies, which never reach the engine, are in
test_runs_api.py."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runplane_durable import LocalEngine
from runplane_durable.events import CancelRequested, parse
from runplane_durable.records import CANCEL_MODES, RunRecord, RunSpec
from runplane_durable.server import openapi
from runplane_durable.server.app import ServerSettings, create_app
from schemathesis import GenerationMode
from support.served_app import served

Writer = Any


def cancel_path(run_id: str) -> str:
    return "/api/v1/runs/" + quote(run_id, safe="").replace(".", "%2E") + "/cancel"


@pytest.fixture
def held(store: str) -> Iterator[str]:
    """A run executing now: another process (this fixture's session) holds its lease."""
    loop = asyncio.new_event_loop()
    engine = LocalEngine(store)
    run_id = f"held-{uuid.uuid4().hex[:8]}"
    spec = RunSpec(run_id, "echo", {}, "fp", {})
    session = loop.run_until_complete(engine.open_run(spec, lease_seconds=60))
    try:
        yield run_id
    finally:
        loop.run_until_complete(session.close())
        loop.run_until_complete(engine.dispose())
        loop.close()


@pytest.mark.parametrize("mode", CANCEL_MODES)
def test_cancel_asks_a_running_run_to_stop(client: httpx.Client, held: str, mode: str) -> None:
    response = client.post(cancel_path(held), json={"mode": mode})
    assert response.status_code == 200, response.text
    record = RunRecord.from_json(response.json())
    assert record.id == held
    assert record.cancel_requested == mode or record.status == "cancelled"
    assert RunRecord.from_json(client.get(cancel_path(held)[: -len("/cancel")]).json()) == record


def test_cancel_without_a_body_is_immediate(client: httpx.Client, held: str) -> None:
    record = RunRecord.from_json(client.post(cancel_path(held)).json())
    assert record.cancel_requested == "immediate" or record.status == "cancelled"


def test_a_cancel_records_who_asked_as_the_client_says_and_the_server_it_came_through(
    client: httpx.Client, writer: Writer, store: str
) -> None:
    """The server writes a client's request on the client's behalf: the `cancel_requested`
    event names the process the client says it is, and the server and client address as the
    way it came; a client that says nothing (a browser) is an API client, never the server."""
    said = {"host": "laptop-7", "pid": 4242, "user": "ann"}
    events = []
    for body in ({"mode": "immediate", "requested_by": said}, {}):
        run = writer.run(status="running")
        answer = client.post(cancel_path(run.id), json=body)
        assert answer.status_code == 200, answer.text
        (asked,) = [e for e in _events(store, run.id) if isinstance(e, CancelRequested)]
        events.append(asked)
    told, silent = events
    assert (told.host, told.pid, told.user) == ("laptop-7", 4242, "ann")
    assert told.via is not None
    assert "runplane server on" in told.via
    assert told.by().startswith("laptop-7 pid 4242 user ann (via runplane server on ")
    assert (silent.host, silent.pid, silent.user) == (None, None, None)
    assert silent.by().startswith("an API client (via runplane server on ")


def _events(store: str, run_id: str) -> list[Any]:
    async def read() -> list[Any]:
        engine = LocalEngine(store)
        try:
            return [parse(e) for e in await engine.list_events(run_id)]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_cancel_of_an_unknown_or_finished_run(client: httpx.Client, writer: Writer) -> None:
    missing = client.post(cancel_path("no-such-run"), json={})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "run_not_found")
    done = writer.run()
    finished = client.post(cancel_path(done.id), json={"mode": "immediate"})
    assert finished.status_code == 409, finished.text
    assert finished.json()["error"]["fields"]["run_id"] == done.id


def test_prune_deletes_the_runs_finished_before_a_time(
    client: httpx.Client, writer: Writer, held: str
) -> None:
    old = [writer.run(), writer.run(status="failed"), writer.run(status="cancelled")]
    cutoff = max(r.finished_at or 0 for r in old) + 1e-3
    while time.time() <= cutoff:
        time.sleep(0.01)
    newer = writer.run()
    response = client.post("/api/v1/prune", json={"finished_before": cutoff})
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] >= len(old)
    for run in old:
        assert client.get(cancel_path(run.id)[: -len("/cancel")]).status_code == 404
    for kept in (newer.id, held):  # finished later, or not finished
        assert client.get(cancel_path(kept)[: -len("/cancel")]).status_code == 200
    again = client.post("/api/v1/prune", json={"finished_before": cutoff})
    assert again.json() == {"deleted": 0}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
NAMES = st.none() | st.text(max_size=300) | st.integers()
ASKERS = (
    st.none()
    | JSON
    | st.fixed_dictionaries(
        {},
        optional={
            "host": NAMES,
            "pid": st.none() | st.integers(-3, 2**64) | st.booleans(),
            "user": NAMES,
        },
    )
)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({"mode": st.sampled_from(CANCEL_MODES)}),
    st.fixed_dictionaries(
        {"mode": st.sampled_from(CANCEL_MODES), "requested_by": ASKERS}, optional={"x": JSON}
    ),
    st.fixed_dictionaries({"finished_before": st.floats(allow_nan=False)}),
)


def _valid_asker(asker: Any) -> bool:
    if asker is None:
        return True
    if not isinstance(asker, dict) or set(asker) - {"host", "pid", "user"}:
        return False
    names_ok = all(
        asker.get(n) is None or (isinstance(asker[n], str) and 0 < len(asker[n]) <= 255)
        for n in ("host", "user")
    )
    pid = asker.get("pid")
    if isinstance(pid, float) and pid.is_integer():  # an integer, as JSON Schema counts
        pid = int(pid)
    pid_ok = pid is None or (type(pid) is int and 0 <= pid <= 2**31 - 1)
    return names_ok and pid_ok


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(BODIES)
def test_any_cancel_body_is_taken_exactly_when_valid(client: httpx.Client, body: Any) -> None:
    response = client.post(cancel_path("no-such-run"), content=json.dumps(body))
    valid = (
        isinstance(body, dict)
        and set(body) <= {"mode", "requested_by"}
        and body.get("mode", "immediate") in CANCEL_MODES
        and _valid_asker(body.get("requested_by"))
    )
    # A valid body reaches the engine, which does not know the run; any other is the API's 400.
    assert response.status_code == (404 if valid else 400), response.text


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(BODIES)
def test_any_prune_body_is_taken_exactly_when_valid(client: httpx.Client, body: Any) -> None:
    # Times before 1970: nothing is deleted, whatever the store holds.
    if isinstance(body, dict) and isinstance(body.get("finished_before"), float):
        body = {**body, "finished_before": -abs(body["finished_before"]) - 1}
    response = client.post("/api/v1/prune", content=json.dumps(body))
    value = body.get("finished_before") if isinstance(body, dict) else None
    valid = (
        isinstance(body, dict)
        and set(body) == {"finished_before"}
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
    if valid:
        assert response.status_code == 200, response.text
        assert response.json() == {"deleted": 0}
    else:
        assert response.status_code == 400, response.text


TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fuzzed(store: str, writer: Writer) -> Iterator[str]:
    writer.run("order-42")
    with served(create_app(LocalEngine(store), ServerSettings(token=TOKEN))) as url:
        yield url


schema = schemathesis.openapi.from_dict(openapi.spec())


# The admin routes (a session's poll, GET /api/v1/sessions/cancel, is fuzzed in test_openapi.py).
@schema.include(path_regex=r"^/api/v1/(runs/\{run_id\}/cancel|prune)$").parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_admin_routes_answer_every_generated_request_as_documented(
    case: Any, fuzzed: str
) -> None:
    positive = case.meta.generation.mode is GenerationMode.POSITIVE
    if case.path == "/api/v1/prune" and positive and isinstance(case.body, dict):
        # Prune only what no test made: runs finished before 1970.
        case.body["finished_before"] = -1.0
    case.call_and_validate(base_url=fuzzed, headers=AUTH, timeout=30)
