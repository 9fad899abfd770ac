"""The web UI in a real headless Chromium, against a real `runplane server` subprocess whose runs
real programs make: the runs list (states, filters, live), a run's page whose timeline follows
the run live, the cancel button, an XSS payload shown as text, and signing in with a token."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from support.durable_server import Server
from support.ui_browser import TOKEN, WAIT, Browser, Programs

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"


def page_of(server: Server, run_id: str) -> str:
    return f"{server.url}/runs/{quote(run_id, safe='').replace('.', '%2E')}"


def row_state(browser: Browser, run_id: str) -> str:
    return str(
        browser.script(
            "const tr = [...document.querySelectorAll('#rows tr')]"
            ".find(r => r.dataset.id === arguments[0]);"
            "return tr ? tr.querySelector('td.state').textContent.trim() : '';",
            run_id,
        )
    )


def row_ids(browser: Browser) -> list[str]:
    ids: list[str] = browser.script(
        "return [...document.querySelectorAll('#rows tr')].map(r => r.dataset.id)"
    )
    return ids


def titles(browser: Browser) -> list[str]:
    found: list[str] = browser.script(
        "return [...document.querySelectorAll('#timeline li .title')].map(e => e.textContent)"
    )
    return found


def assert_nothing_injected(browser: Browser) -> None:
    """The payload is text: no element it would make exists, no dialog opened, no error (a CSP
    violation would be one) in the console."""
    assert browser.alert_text() is None
    counts = browser.script(
        "return {img: document.images.length,"
        " scripts: [...document.scripts].map(s => s.getAttribute('src')),"
        " handlers: document.querySelectorAll('[onerror]').length}"
    )
    assert counts["img"] == 0, counts
    assert counts["handlers"] == 0, counts
    assert counts["scripts"] == ["/ui/static/ui.js"], counts
    assert browser.console_errors() == []


def test_the_list_shows_states_agents_turns_and_tokens_and_filters_them(
    server: Server, programs: Programs, browser: Browser
) -> None:
    programs.run("steps", "order-1", UI_AGENT="support")
    programs.run("steps", "refund-1", UI_AGENT="refunds")
    programs.run("approval", "approve-1")
    browser.open(server.url + "/")
    browser.until(lambda: len(row_ids(browser)) == 3, "the list shows the three runs")
    assert row_ids(browser) == ["approve-1", "refund-1", "order-1"]  # newest first
    assert row_state(browser, "order-1") == "completed"
    assert row_state(browser, "approve-1") == "awaiting approval"
    cells = browser.script(
        "const tr = document.querySelector('#rows tr[data-id=\"order-1\"]');"
        "return [...tr.cells].map(c => c.textContent.trim())"
    )
    assert cells[0] == "order-1"
    assert cells[2] == "support"
    assert cells[3].endswith(" s") or cells[3].endswith(" min")  # its age
    assert cells[4:] == ["2", "38"]  # two model calls (turns), 2 x 19 tokens
    browser.shot("list")

    # Filter by state, from the form.
    from selenium.webdriver.support.select import Select

    Select(browser.css("#filter-state")[0]).select_by_value("awaiting_approval")
    browser.css("#filter-apply")[0].click()
    browser.until(lambda: row_ids(browser) == ["approve-1"], "only the waiting run is listed")
    assert "state=awaiting_approval" in browser.driver.current_url

    # By agent: a click on an agent's name.
    browser.open(server.url + "/")
    browser.until(lambda: len(row_ids(browser)) == 3, "all three again")
    browser.script("document.querySelector('#rows tr[data-id=\"refund-1\"] td.agent a').click()")
    browser.until(lambda: row_ids(browser) == ["refund-1"], "only the refunds agent's run")
    browser.open(server.url + "/?state=completed&agent=support")
    browser.until(lambda: row_ids(browser) == ["order-1"], "both filters at once")


def test_the_list_shows_an_orphaned_run_as_the_cli_does(
    server: Server, programs: Programs, browser: Browser, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    proc = programs.start("steps", "killed-1", UI_GATE=str(gate))
    browser.open(server.url + "/")
    browser.until(lambda: row_state(browser, "killed-1") == "running", "the run shows running")
    proc.kill()  # SIGKILL: it cannot give its lease back
    proc.communicate(timeout=WAIT)
    browser.until(
        lambda: row_state(browser, "killed-1") == "orphaned",
        "the killed program's run shows orphaned, live",
    )
    browser.open(server.url + "/?state=orphaned")
    browser.until(lambda: row_ids(browser) == ["killed-1"], "the orphaned filter finds it")
    browser.open(server.url + "/?state=running")
    browser.until(
        lambda: browser.css("#empty") and browser.css("#empty")[0].is_displayed(),
        "no run is running",
    )


def test_the_list_and_a_run_page_follow_a_run_live(
    server: Server, programs: Programs, browser: Browser, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    browser.open(server.url + "/")
    browser.until(lambda: browser.css("#empty")[0].is_displayed(), "the list starts empty")
    programs.start("steps", "live-1", UI_GATE=str(gate))
    browser.until(lambda: row_state(browser, "live-1") == "running", "the new run appears")

    browser.open(page_of(server, "live-1"))
    browser.until(
        lambda: any(t.startswith("model call #1") for t in titles(browser)),
        "the first model call is on the timeline",
    )
    assert browser.text("#run-state") == "running"
    before = len(titles(browser))
    browser.shot("running")
    gate.write_text("go")  # the tool returns, the model answers, the run completes
    browser.until(lambda: browser.text("#run-state") == "completed", "the state turns completed")
    shown = titles(browser)
    assert len(shown) > before  # appended live, without a reload
    assert "tool lookup" in shown
    assert "model call #2 · agent support" in shown
    assert shown[-1] == "completed"
    assert shown[-2].startswith("attempt 1 on ")
    assert shown[-2].endswith(" ended: finished")
    assert browser.text("[data-field=model_calls]") == "2"
    assert browser.text("[data-field=total_tokens]") == "38"
    assert "The order has shipped." in browser.text("[data-field=final_output]")
    tool = browser.script(
        "const li = [...document.querySelectorAll('#timeline li.tool')][0];"
        "return {blocks: [...li.querySelectorAll('.block')].map(b => b.textContent),"
        " chips: [...li.querySelectorAll('.chip')].map(c => c.textContent),"
        " by: li.querySelector('.by').textContent}"
    )
    assert any("42" in b and "arguments" in b for b in tool["blocks"])
    assert any("shipped with DHL" in b for b in tool["blocks"])
    assert tool["chips"][0].endswith(" s")  # how long the tool took
    assert tool["by"].startswith("attempt 1 · ")  # and which process ran it
    assert browser.css("#cancel-actions")[0].is_displayed() is False
    browser.shot("completed")
    # The item the page appended is the one the server renders: reload and compare.
    live = browser.script("return document.getElementById('timeline').innerText")
    browser.open(page_of(server, "live-1"))
    assert browser.script("return document.getElementById('timeline').innerText") == live
    browser.open(server.url + "/")
    browser.until(lambda: row_state(browser, "live-1") == "completed", "the list says completed")


def test_the_cancel_button_stops_a_running_run(
    server: Server, programs: Programs, browser: Browser, tmp_path: Path
) -> None:
    proc = programs.start("steps", "cancel-1", UI_GATE=str(tmp_path / "never"))
    programs.wait_for("cancel-1", "model_call")
    browser.open(page_of(server, "cancel-1"))
    browser.until(
        lambda: any(t.startswith("model call #1") for t in titles(browser)), "the run is mid-way"
    )
    browser.css("#cancel")[0].click()
    browser.until(lambda: browser.text("#run-state") == "cancelled", "the run shows cancelled")
    shown = titles(browser)
    assert any(t.startswith("cancel requested (immediate) by ") for t in shown)
    assert shown[-1] == "cancelled"
    _, err = proc.communicate(timeout=WAIT)
    assert "RunCancelledError" in err  # the program's own run was stopped
    assert browser.css("#cancel-actions")[0].is_displayed() is False
    browser.shot("cancelled")


def test_what_a_model_or_a_tool_wrote_is_shown_as_text(
    server: Server, programs: Programs, browser: Browser, tmp_path: Path
) -> None:
    """The payload in the input, the tool's arguments and output and the model's message: as
    the server renders it (a finished run) and as the page appends it live."""
    gate = tmp_path / "gate"
    programs.run("xss", "xss-done")
    programs.start("xss", "xss-live", UI_GATE=str(gate))
    programs.wait_for("xss-live", "model_call")
    browser.open(page_of(server, "xss-live"))
    browser.until(
        lambda: any(t.startswith("model call #1") for t in titles(browser)), "the run is mid-way"
    )
    gate.write_text("go")  # the payloads now arrive through the live path
    browser.until(lambda: browser.text("#run-state") == "completed", "the run completes live")
    for name in ("xss-live", "xss-done"):
        if name == "xss-done":
            browser.open(page_of(server, name))
        texts = browser.script(
            "return [...document.querySelectorAll('#timeline pre, [data-field=final_output]')]"
            ".map(e => e.textContent)"
        )
        joined = "\n".join(texts)
        assert f"shipped with DHL {XSS}" in joined  # the tool's output
        assert f"The order has shipped. {XSS}" in joined  # the model's message
        assert json.dumps(f"42 {XSS}") in joined  # the tool's arguments, as JSON
        assert_nothing_injected(browser)
        browser.shot(name)
    browser.open(server.url + "/")
    browser.until(lambda: len(row_ids(browser)) == 2, "both runs listed")
    assert_nothing_injected(browser)


def test_with_a_token_the_browser_signs_in_once_and_everything_works(
    token_server: Server, token_programs: Programs, browser: Browser, tmp_path: Path
) -> None:
    server = token_server
    token_programs.run("steps", "tok-1")
    browser.open(page_of(server, "tok-1"))
    browser.until(lambda: browser.css("#token"), "the page asks to sign in first")
    assert browser.css("#runs") == []
    browser.css("#token")[0].send_keys("not-the-token")
    browser.css("#sign-in")[0].click()
    browser.until(
        lambda: "not this server's token" in browser.text("#problem"), "a wrong token is refused"
    )
    browser.shot("login-refused")
    assert [e for e in browser.console_errors() if "/ui/login" not in e] == []  # only the 403
    browser.css("#token")[0].send_keys(TOKEN)
    browser.css("#sign-in")[0].click()
    browser.until(lambda: browser.text("#run-id") == "tok-1", "back on the page it asked for")
    cookie = browser.driver.get_cookie("runplane_ui")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in json.dumps(cookie)

    # Live with the cookie alone: the list's stream, the run's event stream, cancel.
    gate = tmp_path / "never"
    token_programs.start("steps", "tok-2", UI_GATE=str(gate))
    token_programs.wait_for("tok-2", "model_call")
    browser.open(server.url + "/")
    browser.until(lambda: row_state(browser, "tok-2") == "running", "the list is live")
    browser.open(page_of(server, "tok-2"))
    browser.until(
        lambda: any(t.startswith("model call #1") for t in titles(browser)), "the page is live"
    )
    browser.css("#cancel")[0].click()
    browser.until(lambda: browser.text("#run-state") == "cancelled", "cancel works signed in")
    assert browser.console_errors() == []

    # Signing out forgets the cookie; the API still wants the token without one.
    browser.script("document.querySelector('form.signout button').click()")
    browser.until(lambda: browser.css("#token"), "signed out: the sign-in form again")
    assert httpx.get(f"{server.url}/api/v1/runs", timeout=30).status_code == 401
    browser.open(server.url + "/")
    browser.until(lambda: browser.css("#token"), "the list needs signing in again")


def test_a_resumed_run_shows_each_attempt_and_the_process_of_each_step(
    server: Server, programs: Programs, browser: Browser, tmp_path: Path
) -> None:
    """A program killed mid-tool, its run finished by a worker: the page names each attempt's
    process and, beside each step, the attempt that did it. Its screenshots, with a list of
    runs in several states, are the ones docs/ui.md shows (docs/images/)."""
    never = str(tmp_path / "never")
    programs.run("steps", "order-41")
    programs.run("approval", "order-43")
    killed = programs.start("steps", "refund-7", UI_AGENT="refunds", UI_GATE=never)
    programs.wait_for("refund-7", "model_call")
    killed.kill()  # no worker knows `refunds`: it stays orphaned
    killed.communicate(timeout=WAIT)
    first = programs.start("steps", "order-42", UI_GATE=never)
    programs.wait_for("order-42", "model_call")
    first.kill()
    first.communicate(timeout=WAIT)
    programs.worker("ui_program:support")  # resumes order-42 from its journal
    programs.start("steps", "order-44", UI_GATE=never)  # runs on, waiting on its tool
    programs.wait_for("order-44", "model_call")

    browser.open(page_of(server, "order-42"))
    browser.until(lambda: browser.text("#run-state") == "completed", "the worker finished it")
    shown = titles(browser)
    ended = [t for t in shown if t.startswith("attempt 1 on ")]
    assert len(ended) == 1
    assert ended[0].endswith(" ended: killed")
    assert any(t.startswith("attempt 2 started on ") for t in shown)
    by = browser.script(
        "return [...document.querySelectorAll('#timeline li')].filter(li =>"
        " li.querySelector('.by')).map(li => [li.querySelector('.title').textContent,"
        " li.querySelector('.by').textContent])"
    )
    first_pid = f"pid {first.pid}"
    assert by[0][0] == "model call #1 · agent support"
    assert by[0][1].startswith("attempt 1 · ")
    assert by[0][1].endswith(first_pid)
    assert all(b.startswith("attempt 2 · ") and not b.endswith(first_pid) for _, b in by[1:])
    resumed = browser.script(
        "return [...document.querySelectorAll('#timeline li.attempt .chip')]"
        ".map(c => c.textContent)"
    )
    assert "resumed: 1 model calls, 0 tool outputs replayed" in resumed
    browser.driver.set_window_size(1280, 1500)
    browser.shot("docs-run")
    browser.driver.set_window_size(1280, 560)
    browser.open(server.url + "/")
    browser.until(lambda: row_state(browser, "refund-7") == "orphaned", "the orphaned run")
    assert row_state(browser, "order-44") == "running"
    assert row_state(browser, "order-43") == "awaiting approval"
    browser.shot("docs-runs")
