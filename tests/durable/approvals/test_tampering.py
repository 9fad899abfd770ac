"""A stored snapshot or decision changed outside runplane, or copied from another database, is
refused with `RunStateInvalidError` (HTTP 422 from a server), and no tool runs on it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from runplane_durable import DurableBackend, LocalEngine
from runplane_durable.errors import RunStateInvalidError
from runplane_durable.runtime.runner import resume_run
from support.durable import run_async, sqlite_url
from support.durable_server import running_server

from .test_same_id import Payer, _stop


def _db(tmp_path: Path, name: str) -> tuple[str, Path]:
    path = tmp_path / name
    path.mkdir()
    return sqlite_url(path), path / "runs.db"


def _sql(path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, args)


def _refused(backend: DurableBackend, rid: str, payer: Payer, match: str) -> None:
    with pytest.raises(RunStateInvalidError, match=match) as info:
        run_async(resume_run(backend, run_async(backend.get_run(rid)), payer.rest()))
    assert info.value.run_id == rid
    assert payer.paid == []
    assert run_async(backend.get_run(rid)).status == "awaiting_approval"  # nothing written


def test_a_changed_snapshot_is_refused(tmp_path: Path) -> None:
    url, path = _db(tmp_path, "a")
    backend, payer = DurableBackend(LocalEngine(url)), Payer()
    _stop(backend, "t1", payer)
    run_async(backend.engine.decide("t1", "p1", approve=True))
    with sqlite3.connect(path) as conn:
        (state,) = conn.execute("SELECT state FROM runplane_run_states").fetchone()
    changed = state.replace('{\\"amount\\":5}', '{\\"amount\\":5000}')
    assert changed != state
    _sql(path, "UPDATE runplane_run_states SET state = ?", changed)
    _refused(backend, "t1", payer, "seal does not verify")
    run_async(backend.engine.dispose())


def test_changed_arguments_of_a_waiting_call_are_refused(tmp_path: Path) -> None:
    url, path = _db(tmp_path, "a")
    backend, payer = DurableBackend(LocalEngine(url)), Payer()
    _stop(backend, "t2", payer)
    run_async(backend.engine.decide("t2", "p1", approve=True))
    _sql(path, "UPDATE runplane_approvals SET arguments = ?", '{"amount":5000}')
    _refused(backend, "t2", payer, "seal does not verify")
    run_async(backend.engine.dispose())


def test_a_decision_changed_by_hand_is_refused(tmp_path: Path) -> None:
    url, path = _db(tmp_path, "a")
    backend, payer = DurableBackend(LocalEngine(url)), Payer()
    _stop(backend, "t3", payer)
    run_async(backend.engine.decide("t3", "p1", approve=False, message="no"))
    _sql(path, "UPDATE runplane_approvals SET status = 'approved', message = NULL")
    _refused(backend, "t3", payer, "decision on call 'p1' does not verify")
    run_async(backend.engine.dispose())


def test_an_approval_written_without_a_seal_is_refused(tmp_path: Path) -> None:
    url, path = _db(tmp_path, "a")
    backend, payer = DurableBackend(LocalEngine(url)), Payer()
    _stop(backend, "t4", payer)
    _sql(path, "UPDATE runplane_approvals SET status = 'approved', decided_by = 'mallory'")
    _refused(backend, "t4", payer, "decision on call 'p1' does not verify")
    run_async(backend.engine.dispose())


def test_a_snapshot_sealed_by_another_database_is_refused(tmp_path: Path) -> None:
    url_a, path_a = _db(tmp_path, "a")
    url_b, path_b = _db(tmp_path, "b")
    a, b = DurableBackend(LocalEngine(url_a)), DurableBackend(LocalEngine(url_b))
    payer_a, payer_b = Payer(), Payer()
    _stop(a, "same", payer_a)
    _stop(b, "same", payer_b)
    run_async(a.engine.decide("same", "p1", approve=True))
    # B's snapshot and decisions, replaced by A's rows (a valid seal, under A's key)
    with sqlite3.connect(path_a) as conn:
        state_row = conn.execute("SELECT * FROM runplane_run_states").fetchone()
        approval_row = conn.execute("SELECT * FROM runplane_approvals").fetchone()
    with sqlite3.connect(path_b) as conn:
        conn.execute("DELETE FROM runplane_run_states")
        conn.execute("DELETE FROM runplane_approvals")
        conn.execute(
            f"INSERT INTO runplane_run_states VALUES ({','.join('?' * len(state_row))})", state_row
        )
        conn.execute(
            f"INSERT INTO runplane_approvals VALUES ({','.join('?' * len(approval_row))})",
            approval_row,
        )
    _refused(b, "same", payer_b, "sealed by another database")
    for backend in (a, b):
        run_async(backend.engine.dispose())


def test_the_key_is_made_once_and_stays_in_the_database(tmp_path: Path) -> None:
    url, path = _db(tmp_path, "a")
    for _ in range(2):
        engine = LocalEngine(url)
        run_async(engine.list_runs())
        run_async(engine.dispose())
    with sqlite3.connect(path) as conn:
        keys = conn.execute("SELECT name, length(secret) FROM runplane_keys").fetchall()
    assert keys == [("seal", 64)]


def test_a_server_refuses_a_changed_snapshot_with_422(tmp_path: Path) -> None:
    url, path = _db(tmp_path, "a")
    backend, payer = DurableBackend(LocalEngine(url)), Payer()
    _stop(backend, "t5", payer)
    run_async(backend.engine.dispose())
    _sql(path, "UPDATE runplane_run_states SET model_calls = 0")
    with running_server(url, tmp_path / "server.log") as server:
        answer = httpx.get(f"{server.url}/api/v1/runs/t5/snapshot", timeout=30)
        assert answer.status_code == 422
        error = answer.json()["error"]
        assert error["code"] == "run_state_invalid"
        assert error["fields"]["run_id"] == "t5"
        # the key never crosses the wire: no route answers with it
        with sqlite3.connect(path) as conn:
            (secret,) = conn.execute("SELECT secret FROM runplane_keys").fetchone()
        assert secret not in answer.text
        listed = httpx.get(f"{server.url}/api/v1/runs/t5/approvals", timeout=30)
        assert listed.status_code == 200
        assert secret not in listed.text
        assert json.loads(listed.text)["approvals"][0]["status"] == "pending"
