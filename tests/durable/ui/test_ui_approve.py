"""Approving from the web UI, in a real headless Chromium: a program's run waits for approval
and the program exits; the list shows it awaiting approval; its page lists the pending call with
Approve and Reject; pressing Approve records the decision (with who decided) through
`POST /api/v1/runs/{id}/approvals`, and a `runplane worker` that knows the agent finishes the
run, which the page follows live to its completion. Needs the approvals API
(/work/wt/notes/api.md, issue #12)."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from support.durable_server import Server
from support.ui_browser import Browser, Programs

pytestmark = pytest.mark.browser


def page_of(server: Server, run_id: str) -> str:
    return f"{server.url}/runs/{quote(run_id, safe='').replace('.', '%2E')}"


def titles(browser: Browser) -> list[str]:
    found: list[str] = browser.script(
        "return [...document.querySelectorAll('#timeline li .title')].map(e => e.textContent)"
    )
    return found


def approval_row(browser: Browser, call_id: str) -> dict[str, str]:
    found: dict[str, str] = browser.script(
        "const tr = [...document.querySelectorAll('#approval-rows tr')]"
        ".find(r => r.dataset.callId === arguments[0]);"
        "if (!tr) return null;"
        "return {tool: tr.querySelector('.tool').textContent,"
        " status: tr.querySelector('.status').textContent,"
        " by: tr.querySelector('.decided-by').textContent,"
        " arguments: tr.querySelector('pre').textContent,"
        " buttons: tr.querySelectorAll('button').length}",
        call_id,
    )
    return found


def events_of(server: Server, run_id: str) -> list[str]:
    answer = httpx.get(f"{server.url}/api/v1/runs/{quote(run_id, safe='')}/events", timeout=30)
    return [e["type"] for e in answer.json()["events"]]


def test_approve_from_the_ui_and_watch_the_run_finish(
    server: Server, programs: Programs, browser: Browser
) -> None:
    outcome = programs.run("approval", "wait-1")  # pauses, then the program exits
    assert '"interruptions": ["call-lookup"]' in outcome
    worker = programs.worker("ui_program:approver")

    browser.open(server.url + "/")
    browser.until(
        lambda: browser.text("#rows tr[data-id='wait-1'] td.state") == "awaiting approval",
        "the list shows the run awaiting approval",
    )
    browser.shot("list-awaiting")
    browser.css("#rows tr[data-id='wait-1'] td.id a")[0].click()
    browser.until(lambda: browser.text("#run-id") == "wait-1", "the run's page opens")
    row = browser.until(
        lambda: approval_row(browser, "call-lookup"), "the pending call is listed with buttons"
    )
    assert row["tool"] == "lookup"
    assert row["status"] == "pending"
    assert json.loads(row["arguments"]) == {"order": "42"}  # the call's arguments, as sent
    assert row["buttons"] == 2  # Approve, Reject
    assert browser.text("#run-state") == "awaiting approval"
    browser.shot("awaiting")

    browser.css("#approval-rows tr[data-call-id='call-lookup'] button.approve")[0].click()
    browser.until(
        lambda: approval_row(browser, "call-lookup")["status"] == "approved", "recorded approved"
    )
    assert approval_row(browser, "call-lookup")["by"]  # who decided
    browser.until(
        lambda: browser.text("#run-state") == "completed",
        "the worker finishes the run, and the page follows it live",
    )
    shown = titles(browser)
    assert any(t.startswith("approved call-lookup") for t in shown)
    assert "tool lookup" in shown
    assert shown[-1] == "completed"
    assert "The order has shipped." in browser.text("[data-field=final_output]")
    browser.shot("approved-completed")
    # Finished once: one outcome, the tool executed once.
    types = events_of(server, "wait-1")
    assert types.count("run_completed") == 1
    assert types.count("tool_call") == 1
    assert worker.poll() is None  # still serving


def test_reject_from_the_ui_with_a_message(
    server: Server, programs: Programs, browser: Browser
) -> None:
    programs.run("approval", "wait-2")
    programs.worker("ui_program:approver")
    browser.open(page_of(server, "wait-2"))
    browser.until(lambda: approval_row(browser, "call-lookup"), "the pending call is listed")
    browser.css("#approval-rows tr[data-call-id='call-lookup'] input.reason")[0].send_keys(
        "not this order"
    )
    browser.css("#approval-rows tr[data-call-id='call-lookup'] button.reject")[0].click()
    browser.until(
        lambda: approval_row(browser, "call-lookup")["status"] == "rejected", "recorded rejected"
    )
    browser.until(lambda: browser.text("#run-state") == "completed", "the run goes on to its end")
    assert any(t.startswith("rejected call-lookup") for t in titles(browser))
    assert "not this order" in browser.text("#timeline")
    browser.shot("rejected")
