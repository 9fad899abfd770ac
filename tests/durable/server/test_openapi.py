"""The API's OpenAPI document: it describes every route of the app and every member of the
records it serves, and a running server (with a token, on SQLite and PostgreSQL) answers every
request schemathesis generates from it with no 5xx and nothing the document does not allow.

POST /cancel and /prune are fuzzed in test_cancel_prune_api.py: they call the engine's
`cancel_run` and `prune`, which engineer C adds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from runplane_durable import LocalEngine
from runplane_durable.records import (
    Approval,
    EventRecord,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunSpec,
    Snapshot,
    TaskLease,
    TaskRecord,
    TaskResult,
    TaskSpec,
    UsageDelta,
    run_cursor,
)
from runplane_durable.server import openapi
from runplane_durable.server.app import ServerSettings, create_app
from runplane_durable.writes import Append, Finish, Heartbeat, Interrupt, Opened, Release
from schemathesis import GenerationMode
from starlette.routing import Route
from support.served_app import served

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Writer = Any


def test_every_route_of_the_app_is_in_the_document() -> None:
    app = create_app(LocalEngine("sqlite://"))
    routes = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, item in openapi.spec()["paths"].items() for method in item
    }
    assert routes == documented


@pytest.mark.parametrize(
    ("schema", "record"),
    [
        ("RunRecord", RunRecord),
        ("JournalRecord", JournalRecord),
        ("EventRecord", EventRecord),
        ("RunSpec", RunSpec),
        ("TaskSpec", TaskSpec),
        ("TaskRecord", TaskRecord),
        ("TaskLease", TaskLease),
        ("TaskResult", TaskResult),
        ("Opened", Opened),
        ("Append", Append),
        ("Heartbeat", Heartbeat),
        ("Finish", Finish),
        ("Release", Release),
        ("Interrupt", Interrupt),
        ("Approval", Approval),
        ("Snapshot", Snapshot),
        ("JournalEntry", JournalEntry),
        ("NewEvent", NewEvent),
        ("UsageDelta", UsageDelta),
    ],
)
def test_each_record_schema_has_exactly_the_records_members(schema: str, record: type) -> None:
    described = openapi.spec()["components"]["schemas"][schema]
    members = {f.name for f in dataclasses.fields(record)}
    assert set(described["properties"]) == members
    # to_json always writes every member; a request may leave out those with defaults
    defaults = {
        f.name
        for f in dataclasses.fields(record)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    assert members - defaults <= set(described["required"]) <= members
    assert described["additionalProperties"] is False


def test_the_document_is_served_and_is_valid_openapi_3_1(client: httpx.Client) -> None:
    served_doc = client.get(openapi.PATH).json()
    assert served_doc == openapi.spec()
    assert served_doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(served_doc)  # refuses a document that is not valid OpenAPI


@dataclasses.dataclass
class Fuzzed:
    url: str
    cursor: str  # a real cursor: generated ones are schema-valid text, but no cursor


@pytest.fixture(scope="module")
def fuzzed(store: str, writer: Writer) -> Iterator[Fuzzed]:
    """A server with a token, on a store holding finished runs (the document's example id,
    "order-42", among them) so that generated requests reach runs as well as 404s. No run is
    left running: its event stream would stay open."""
    first = writer.run("order-42")
    writer.run("order-43", status="failed")
    writer.run("order-44", status="cancelled")
    with served(create_app(LocalEngine(store), ServerSettings(token=TOKEN))) as url:
        yield Fuzzed(url, run_cursor(first))


# The document as the app builds it (test_the_document_is_served... checks the server serves
# exactly this); each test case is sent to the running server.
schema = schemathesis.openapi.from_dict(openapi.spec())


# The client protocol's routes (what a RemoteEngine and workers send: openapi.CLIENT_PATHS) are
# fuzzed below for server errors only: their inputs are a client's records, whose rules (a run
# id, an owner, seqs) the document states as types.
_CLIENT = "|".join(re.escape(p) for p in openapi.CLIENT_PATHS)


@(
    schema.exclude(path_regex="/(cancel|prune)$")
    .exclude(path_regex=f"^({_CLIENT})$", method="POST")
    .exclude(path_regex="^/api/v1/(tasks|durable-sessions)", method="GET")  # client routes
    .parametrize()
)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_server_answers_every_generated_request_as_documented(
    case: Any, fuzzed: Fuzzed
) -> None:
    if case.meta.generation.mode is GenerationMode.POSITIVE and "cursor" in (case.query or {}):
        # An opaque cursor: text the schema allows but the server never made is rightly a 400
        # (test_runs_api.py), so a valid request carries one the server made.
        case.query["cursor"] = fuzzed.cursor
    case.call_and_validate(base_url=fuzzed.url, headers=AUTH, timeout=30)


@schema.include(path_regex=f"^({_CLIENT})$").parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_client_routes_answer_any_request_without_a_server_error(
    case: Any, fuzzed: Fuzzed
) -> None:
    """Any body a client could send to the write side and the workers' routes is answered,
    never a 5xx: what does not fit is refused (400) before any database sees it."""
    from schemathesis.checks import not_a_server_error

    case.call_and_validate(
        base_url=fuzzed.url, headers=AUTH, timeout=30, checks=[not_a_server_error]
    )
