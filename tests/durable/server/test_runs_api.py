"""The read side of `runplane server`'s API, over real HTTP (uvicorn), on SQLite and PostgreSQL:
listing runs with filters and cursors, a run, its journal, events and attempts; any run id;
unknown runs and malformed requests answered with the API's error body."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runplane_durable import LocalEngine
from runplane_durable.records import (
    RUN_STATUSES,
    EventRecord,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
)
from runplane_durable.server.app import create_app
from support.served_app import served

# What the conftest's `Writer` is (a fixture value: test modules cannot import the conftest).
Writer = Any


def path(run_id: str) -> str:
    """A run's URL path as api.md says clients write it; dots too, which URL libraries would
    otherwise take for `.`/`..` segments."""
    return "/api/v1/runs/" + quote(run_id, safe="").replace(".", "%2E")


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    error: dict[str, Any] = body["error"]
    return error


def test_a_run_its_journal_events_and_attempts(client: httpx.Client, writer: Writer) -> None:
    entry = JournalEntry("model", "1", "fp-1", {"output": [{"text": "héllo"}]})
    made = writer.run(journal=[entry], events=[NewEvent("model_call", {"ordinal": 0})])
    got = client.get(path(made.id))
    assert got.status_code == 200
    assert RunRecord.from_json(got.json()) == made
    journal = client.get(path(made.id) + "/journal").json()["journal"]
    assert [JournalRecord.from_json(r) for r in journal] == [
        JournalRecord(entry.kind, entry.key, entry.fingerprint, entry.payload, seq=1)
    ]
    events = [
        EventRecord.from_json(e) for e in client.get(path(made.id) + "/events").json()["events"]
    ]
    assert [e.type for e in events] == [
        "attempt_started",
        "model_call",
        "attempt_ended",
        "run_completed",
    ]
    page = client.get(path(made.id) + "/events", params={"after": 1, "limit": 2}).json()
    assert [e["seq"] for e in page["events"]] == [2, 3]
    attempts = client.get(path(made.id) + "/attempts").json()["attempts"]
    assert len(attempts) == 1
    assert attempts[0]["attempt"] == 1
    assert attempts[0]["started"]["seq"] == 1
    assert attempts[0]["started"]["owner"] == attempts[0]["ended"]["owner"]
    assert (attempts[0]["ended"]["reason"], attempts[0]["ended"]["seq"]) == ("finished", 3)


def test_attempts_of_a_resumed_run(client: httpx.Client, writer: Writer) -> None:
    first = writer.run(status="running")  # interrupted: its lease given back
    writer.run(first.id, status="completed")  # resumed by another process
    attempts = client.get(path(first.id) + "/attempts").json()["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert [a["ended"]["reason"] for a in attempts] == ["interrupted", "finished"]
    assert attempts[1]["started"]["resumed"] is False  # no journal yet to replay


@pytest.mark.parametrize(
    "run_id",
    [
        "a/events",  # would be the events of run "a" if routed on the decoded path
        "a/events/stream",
        "a/journal",
        "what?now=1&x",
        "100%",
        "%2F",  # an id that is itself an escape
        "with space",
        "ünïcødé ✓ 日本",
        "..",
        ".",
        "a+b",
        "#hash",
        "x" * 200,
    ],
)
def test_any_storable_run_id_names_its_run_and_only_it(
    client: httpx.Client, writer: Writer, run_id: str
) -> None:
    unique = run_id if len(run_id) == 200 else f"{run_id}{uuid.uuid4().hex[:6]}"[-200:]
    for rid in (unique, f"{uuid.uuid4().hex[:6]}{run_id}"[:200]):
        made = writer.run(rid)
        assert client.get(path(rid)).json()["id"] == rid
        assert client.get(path(rid) + "/journal").json() == {"journal": []}
        events = client.get(path(rid) + "/events").json()["events"]
        assert {e["run_id"] for e in events} == {rid}
        assert client.get(path(rid) + "/attempts").json()["attempts"][0]["attempt"] == 1
        assert made.id == rid


def test_an_id_that_holds_a_route_is_never_mistaken_for_it(
    client: httpx.Client, writer: Writer
) -> None:
    base = f"base-{uuid.uuid4().hex[:6]}"
    writer.run(base)
    # The run "BASE/events" does not exist: its path must not reach the events of run BASE.
    error = error_of(client.get(path(f"{base}/events")), 404)
    assert (error["code"], error["fields"]["run_id"]) == ("run_not_found", f"{base}/events")


def test_an_unknown_run_is_a_404_with_the_engines_error(client: httpx.Client) -> None:
    for suffix in ("", "/journal", "/events", "/attempts", "/events/stream"):
        error = error_of(client.get(path("no-such-run") + suffix), 404)
        assert error["code"] == "run_not_found"
        assert error["fields"]["run_id"] == "no-such-run"
        assert "runplane runs list" in error["message"]


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("%00", "unstorable_name", "NUL"),
        ("x" * 201, "unstorable_name", "at most 200"),
        ("%ff", "bad_request", "not percent-encoded UTF-8"),
        ("%ED%A0%80", "bad_request", "not percent-encoded UTF-8"),  # a lone surrogate
    ],
)
def test_a_run_id_no_database_can_store_is_a_400(
    client: httpx.Client, raw: str, code: str, words: str
) -> None:
    error = error_of(client.get(f"/api/v1/runs/{raw}"), 400)
    assert error["code"] == code
    assert words in error["message"]


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [RunRecord.from_json(r).id for r in response.json()["runs"]]


def test_list_runs_filters_and_pages_newest_first(client: httpx.Client, writer: Writer) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    made = [
        writer.run(f"{agent}-{i}", agent=agent, status=("completed", "failed")[i % 2])
        for i in range(5)
    ]
    newest = [r.id for r in reversed(made)]
    assert _ids(client.get("/api/v1/runs", params={"agent": agent})) == newest
    failed = client.get("/api/v1/runs", params={"agent": agent, "status": "failed"})
    assert _ids(failed) == [made[3].id, made[1].id]
    window = {"agent": agent, "created_after": repr(made[1].created_at)}
    window["created_before"] = repr(made[4].created_at)
    assert _ids(client.get("/api/v1/runs", params=window)) == [made[3].id, made[2].id, made[1].id]
    pages, cursor = [], None
    while True:
        params = {"agent": agent, "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/runs", params=params).json()
        pages.append([r["id"] for r in body["runs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [newest[:2], newest[2:4], newest[4:]]  # no empty last page
    assert (
        client.get("/api/v1/runs", params={"agent": agent, "limit": 5}).json()["next_cursor"]
        is None
    )


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 1000"),
        ({"limit": "1001"}, "limit must be a whole number from 1 to 1000"),
        ({"limit": "ten"}, "got 'ten'"),
        ({"limit": "-1"}, "limit must be"),
        ({"status": "paused"}, "status must be a run status"),
        ({"created_after": "yesterday"}, "created_after must be a time in seconds"),
        ({"created_before": "nan"}, "created_before must be a time"),
        ({"created_before": "inf"}, "created_before must be a time"),
        ({"cursor": "garbage"}, "is not a run listing's cursor"),
        ({"stauts": "failed"}, "unknown query parameter stauts"),
        ({"agent": "\x00"}, "NUL"),
    ],
)
def test_list_runs_refuses_bad_parameters_saying_why(
    client: httpx.Client, params: dict[str, str], words: str
) -> None:
    error = error_of(client.get("/api/v1/runs", params=params), 400)
    assert words in error["message"]


def test_a_parameter_given_twice_or_unknown_is_refused(client: httpx.Client) -> None:
    error = error_of(client.get("/api/v1/runs?status=failed&status=completed"), 400)
    assert "given more than once" in error["message"]
    assert "unknown query parameter" in error_of(client.get(path("x") + "?limit=3"), 400)["message"]
    events = client.get(path("x") + "/events", params={"after": "-1"})
    assert "after must be a whole number" in error_of(events, 400)["message"]


def test_routes_and_methods_the_api_does_not_have(client: httpx.Client) -> None:
    assert error_of(client.get("/api/v1/nothing"), 404)["code"] == "not_found"
    wrong = client.delete(path("x"))
    assert error_of(wrong, 405)["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "is not JSON"),
        (b"NaN", "is not JSON"),
        (b"[" * 100_000, "is not JSON"),
        (b"\xff\xfe", "is not JSON"),
        (b"", "is not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"finished_before": "soon"}', "finished_before must be a time"),
        (b'{"finished_before": true}', "finished_before must be a time"),
        (b"{}", "missing finished_before"),
        (b'{"finished_before": 1, "force": 1}', "unknown 'force'"),
    ],
)
def test_prune_refuses_a_malformed_body(client: httpx.Client, body: bytes, words: str) -> None:
    error = error_of(client.post("/api/v1/prune", content=body), 400)
    assert words in error["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{bad", "is not JSON"),
        (b'{"mode": "later"}', "mode must be one of: immediate, after_turn"),
        (b'{"mode": null}', "mode must be one of"),
        (b'{"how": "now"}', "unknown 'how'"),
        (b'"immediate"', "must be a JSON object"),
    ],
)
def test_cancel_refuses_a_malformed_body(client: httpx.Client, body: bytes, words: str) -> None:
    error = error_of(client.post(path("any-run") + "/cancel", content=body), 400)
    assert words in error["message"]


QUERY_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 2000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(RUN_STATUSES),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(["limit", "status", "created_after", "created_before"]), QUERY_VALUES
    )
)
def test_list_runs_takes_exactly_the_valid_parameters(
    client: httpx.Client, params: dict[str, str]
) -> None:
    """Any values: a 200 when each is valid, else a 400 naming a parameter; never a 5xx."""
    response = client.get("/api/v1/runs", params=params)

    def valid(name: str, value: str) -> bool:
        if name == "limit":
            return value.isascii() and value.isdigit() and 1 <= int(value) <= 1000
        if name == "status":
            return value in RUN_STATUSES
        try:
            number = float(value)
        except ValueError:
            return False
        return number - number == 0 and bool(value.strip())

    if all(valid(n, v) for n, v in params.items()):
        assert response.status_code == 200, response.text
        runs = [RunRecord.from_json(r) for r in response.json()["runs"]]
        assert len(runs) <= int(params.get("limit", 50))
        if "status" in params:
            assert {r.status for r in runs} <= {params["status"]}
    else:
        error = error_of(response, 400)
        assert error["fields"]["parameter"] in params


def test_a_database_that_cannot_be_reached_is_a_503_saying_so() -> None:
    # retry_seconds=0: no wait for it to come back (tests/durable/faults waits it out)
    engine = LocalEngine("postgresql://postgres@127.0.0.1:1/nowhere", timeout=2, retry_seconds=0)
    with served(create_app(engine)) as url:
        response = httpx.get(f"{url}/api/v1/runs", timeout=30)
        health = httpx.get(f"{url}/healthz", timeout=30)
    error = error_of(response, 503)
    assert error["code"] == "database"
    assert "127.0.0.1:1" in error["message"]
    assert health.status_code == 200  # the server is up; its database is not
