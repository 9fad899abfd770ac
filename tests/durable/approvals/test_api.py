"""The approvals API of `runplane server` (/api/v1/runs/{id}/approvals): listing, deciding with
who decided, idempotency, and each refusal with its status and error code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runplane_durable import DurableBackend, LocalEngine
from runplane_durable.server.app import ServerSettings, create_app
from support.durable import run_async, sqlite_url
from support.served_app import served

from .test_same_id import Payer, _stop


@pytest.fixture
def waiting(tmp_path: Path) -> Iterator[tuple[str, DurableBackend]]:
    """A server on a SQLite file holding run "w1", waiting for call p1; and a backend on it."""
    url = sqlite_url(tmp_path)
    backend = DurableBackend(LocalEngine(url))
    _stop(backend, "w1", Payer())
    with served(create_app(LocalEngine(url), ServerSettings())) as api:
        yield api, backend
    run_async(backend.engine.dispose())


def _post(api: str, run_id: str, body: Any) -> httpx.Response:
    return httpx.post(f"{api}/api/v1/runs/{run_id}/approvals", json=body, timeout=30)


def test_list_and_decide_over_http(waiting: tuple[str, DurableBackend]) -> None:
    api, backend = waiting
    listed = httpx.get(f"{api}/api/v1/runs/w1/approvals", timeout=30)
    assert listed.status_code == 200
    (approval,) = listed.json()["approvals"]
    assert approval["call_id"] == "p1"
    assert approval["status"] == "pending"
    assert set(approval) == {
        "call_id", "tool_name", "arguments", "agent_name", "key", "status", "always",
        "message", "requested_at", "decided_at", "decided_by", "policy",
    }  # fmt: skip
    decided = _post(api, "w1", {"call_id": "p1", "decision": "approve", "decided_by": "ops"})
    assert decided.status_code == 200
    body = decided.json()
    assert body["run"]["id"] == "w1"
    assert body["approvals"][0]["status"] == "approved"
    assert body["approvals"][0]["decided_by"] == "ops via 127.0.0.1"
    again = _post(api, "w1", {"call_id": "p1", "decision": "approve"})
    assert again.status_code == 200
    assert again.json()["approvals"] == body["approvals"]  # nothing new written
    types = [e.type for e in run_async(backend.engine.list_events("w1"))]
    assert types.count("approval_decided") == 1
    conflict = _post(api, "w1", {"call_id": "p1", "decision": "reject", "message": "no"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "approval_conflict"
    assert "approved already" in conflict.json()["error"]["message"]


def test_refusals_over_http(waiting: tuple[str, DurableBackend]) -> None:
    api, _ = waiting
    unknown_run = _post(api, "nope", {"decision": "approve"})
    assert (unknown_run.status_code, unknown_run.json()["error"]["code"]) == (
        404,
        "run_not_found",
    )
    assert httpx.get(f"{api}/api/v1/runs/nope/approvals", timeout=30).status_code == 404
    unknown_call = _post(api, "w1", {"call_id": "p9", "decision": "approve"})
    assert unknown_call.status_code == 404
    error = unknown_call.json()["error"]
    assert (error["code"], error["fields"]["pending"]) == ("approval_not_found", ["p1"])
    for body, member in [
        ({"decision": "maybe"}, "decision"),
        ({"call_id": "p1"}, "decision"),
        ({"decision": "approve", "always": "yes"}, "always"),
        ({"decision": "approve", "call_id": 3}, "call_id"),
        ({"decision": "approve", "extra": 1}, "extra"),
    ]:
        bad = _post(api, "w1", body)
        assert bad.status_code == 400, body
        assert member in bad.json()["error"]["message"]
    everything = _post(api, "w1", {"call_id": None, "decision": "reject", "message": "no"})
    assert everything.status_code == 200
    assert everything.json()["approvals"][0]["message"] == "no"
    none_left = _post(api, "w1", {"call_id": None, "decision": "reject"})
    assert none_left.status_code == 404
    assert "no call waiting" in none_left.json()["error"]["message"]
