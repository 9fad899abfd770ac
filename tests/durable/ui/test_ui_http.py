"""The web UI over HTTP, without a browser: what the pages hold (escaped), the data their
scripts read, the refusal of cross-site writes, the sign-in cookie, bad input, and the UI under a
prefix. Runs are made by the durable runtime with a scripted model, on a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents import Agent, Usage, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, LocalEngine, run_id
from runplane_durable.server.app import ServerSettings, create_app
from runplane_durable.server.ui_auth import COOKIE, cookie_value
from runplane_durable.server.ui_views import age
from starlette.applications import Starlette
from starlette.routing import Mount
from support.durable import sqlite_url
from support.served_app import served

XSS = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
TOKEN = "ui-tøken"  # not ASCII: the form and the cookie take any token
USAGE = Usage(requests=1, input_tokens=12, output_tokens=7, total_tokens=19)


@function_tool
def lookup(order: str) -> str:
    """Look an order up."""
    return f"shipped {XSS}"


def _agent(name: str = "support") -> Agent[Any]:
    model = ScriptedModel(
        [
            [function_call("lookup", {"order": f"42{XSS}"}, call_id="c1")],
            [assistant_message(f"Answer {XSS}")],
        ],
        default_usage=USAGE,
    )
    return Agent(name=name, model=model, tools=[lookup])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with a completed run holding the payload, and one id full of odd characters."""
    url = sqlite_url(tmp_path_factory.mktemp("ui"))

    async def make() -> None:
        backend = DurableBackend(LocalEngine(url))
        for rid, name in (("xss-1", "support"), ("odd/../id.1", "refunds")):
            with run_id(rid):
                await backend.run(_agent(name), f"hi {XSS}")

    asyncio.run(make())
    return url


@pytest.fixture(scope="module")
def open_ui(store: str) -> Iterator[str]:
    with served(create_app(LocalEngine(store), ServerSettings())) as url:
        yield url


@pytest.fixture(scope="module")
def token_ui(store: str) -> Iterator[str]:
    with served(create_app(LocalEngine(store), ServerSettings(token=TOKEN))) as url:
        yield url


def test_the_runs_list_page_shows_each_run_escaped(open_ui: str) -> None:
    page = httpx.get(open_ui + "/", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert 'href="/runs/odd%2F%2E%2E%2Fid%2E1"' in html
    assert re.search(r'<span class="state completed"[^>]*>completed</span>', html)
    assert '<td class="n tokens">38</td>' in html


def test_the_run_page_escapes_what_the_model_and_the_tool_wrote(open_ui: str) -> None:
    html = httpx.get(open_ui + "/runs/xss-1", timeout=30).text
    escaped = (
        "&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"
    )
    assert f"shipped {escaped}" in html  # the tool's output
    assert f"Answer {escaped}" in html  # the model's message
    assert "<img" not in html
    assert html.count("<script") == 1  # ours: <script src=".../ui.js">
    # Every item of the timeline, from the first attempt to the outcome.
    titles = re.findall(r'<span class="title">([^<]*)</span>', html)
    assert titles[0].startswith("attempt 1 started on ")
    assert titles[1:4] == [
        "model call #1 · agent support",
        "tool lookup",
        "model call #2 · agent support",
    ]
    assert titles[-1] == "completed"
    assert "12 in · 7 out tokens" in html


def test_the_timeline_data_is_the_items_after_a_seq_as_json(open_ui: str) -> None:
    everything = httpx.get(open_ui + "/ui/runs/xss-1/timeline", timeout=30).json()
    seqs = [i["seq"] for i in everything["items"]]
    assert seqs == sorted(seqs)
    assert len(seqs) >= 6
    assert everything["run"]["state"] == "completed"
    assert everything["run"]["last_seq"] == seqs[-1]
    later = httpx.get(open_ui + f"/ui/runs/xss-1/timeline?after={seqs[2]}", timeout=30).json()
    assert [i["seq"] for i in later["items"]] == seqs[3:]
    tool = next(i for i in everything["items"] if i["kind"] == "tool")
    assert {"label": "output", "text": f"shipped {XSS}", "tone": ""} in tool["blocks"]
    assert tool["by"].startswith("attempt 1 · ")
    odd = httpx.get(open_ui + "/ui/runs/odd%2F%2E%2E%2Fid%2E1/timeline", timeout=30).json()
    assert odd["run"]["id"] == "odd/../id.1"


def test_bad_input_gets_a_page_saying_what_was_wrong(open_ui: str) -> None:
    missing = httpx.get(open_ui + "/runs/nope", timeout=30)
    assert missing.status_code == 404
    assert "no run &#39;nope&#39;" in missing.text
    state = httpx.get(open_ui + "/?state=sleeping", timeout=30)
    assert state.status_code == 400
    assert "state must be one of: queued, running, orphaned" in state.text
    typo = httpx.get(open_ui + "/?stat=failed", timeout=30)
    assert typo.status_code == 400
    assert "unknown query parameter stat" in typo.text
    bad_after = httpx.get(open_ui + "/ui/runs/xss-1/timeline?after=x", timeout=30)
    assert bad_after.status_code == 400
    assert bad_after.json()["error"]["fields"] == {"parameter": "after"}
    assert httpx.get(open_ui + "/ui/runs/nope/timeline", timeout=30).status_code == 404


def test_filters_by_state_and_agent(open_ui: str) -> None:
    def ids(query: str) -> list[str]:
        html = httpx.get(open_ui + "/" + query, timeout=30).text
        return re.findall(r'<tr data-id="([^"]*)">', html)

    assert ids("") == ["odd/../id.1", "xss-1"]
    assert ids("?agent=support") == ["xss-1"]
    assert ids("?state=completed&agent=refunds") == ["odd/../id.1"]
    assert ids("?state=orphaned") == []
    assert ids("?state=&agent=") == ["odd/../id.1", "xss-1"]  # the form's empty choices


async def _first_event(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                found: dict[str, Any] = json.loads("\n".join(data))
                return found
    raise AssertionError("the stream ended without an event")


def test_the_list_stream_sends_the_rows_with_their_states(open_ui: str) -> None:
    snapshot = asyncio.run(_first_event(open_ui + "/ui/runs/stream?agent=support"))
    assert [r["id"] for r in snapshot["runs"]] == ["xss-1"]
    row = snapshot["runs"][0]
    assert (row["state"], row["turns"], row["tokens"], row["path"]) == ("completed", 2, 38, "xss-1")
    assert isinstance(snapshot["now"], float)


def test_age_reads_like_the_cli() -> None:
    assert [age(s) for s in (-1, 5, 119, 120, 7199, 7200, 172800)] == [
        "0 s",
        "5 s",
        "119 s",
        "2 min",
        "120 min",
        "2 h",
        "2 d",
    ]


# -- cross-site requests --------------------------------------------------------------------------


def test_a_cross_site_write_is_refused_whatever_it_carries(open_ui: str, store: str) -> None:
    """A page elsewhere cannot make a visitor's browser cancel or approve: a POST whose Origin
    is not this server, or that the browser marks cross-site, is a 403 before any route."""
    host = open_ui.removeprefix("http://")
    cancel = open_ui + "/api/v1/runs/xss-1/cancel"
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://{host}.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of the same host is another origin
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
    ):
        answer = httpx.post(cancel, headers=headers, content=b"", timeout=30)
        assert answer.status_code == 403, headers
        assert answer.json()["error"]["code"] == "cross_site"
    approve = httpx.post(
        open_ui + "/api/v1/runs/xss-1/approvals",
        json={"call_id": None, "decision": "approve"},
        headers={"Origin": "http://evil.example"},
        timeout=30,
    )
    assert approve.status_code == 403
    logout = httpx.post(open_ui + "/ui/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert logout.status_code == 403
    # The same write from the server's own page, or from a program, reaches the route (here it
    # is refused for its own reason: the run is completed).
    for headers in ({"Origin": open_ui, "Sec-Fetch-Site": "same-origin"}, {}):
        answer = httpx.post(cancel, headers=headers, timeout=30)
        assert answer.status_code == 409, headers
        assert answer.json()["error"]["code"] == "run_finished"


# -- the token ------------------------------------------------------------------------------------


def test_with_a_token_pages_send_to_sign_in_and_data_needs_it(token_ui: str) -> None:
    page = httpx.get(token_ui + "/runs/xss-1?x=1", timeout=30)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fruns%2Fxss-1%3Fx%3D1"
    assert httpx.get(token_ui + "/", timeout=30).status_code == 303
    for data in ("/ui/runs/xss-1/timeline", "/ui/runs/stream", "/api/v1/runs"):
        assert httpx.get(token_ui + data, timeout=30).status_code == 401, data
    form = httpx.get(token_ui + "/ui/login?next=/runs/xss-1", timeout=30)
    assert form.status_code == 200
    assert 'name="next" value="/runs/xss-1"' in form.text
    # Static files hold no run data: open.
    assert httpx.get(token_ui + "/ui/static/ui.js", timeout=30).status_code == 200


def _sign_in(url: str, token: str, next_: str = "/runs/xss-1") -> httpx.Response:
    return httpx.post(
        url + "/ui/login",
        content=httpx.QueryParams({"token": token, "next": next_}).__str__().encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": url},
        timeout=30,
    )


def test_signing_in_sets_a_cookie_that_stands_for_the_token(token_ui: str) -> None:
    wrong = _sign_in(token_ui, "guess")
    assert wrong.status_code == 403
    assert "That is not this server's token." in wrong.text
    assert COOKIE not in wrong.cookies
    right = _sign_in(token_ui, TOKEN)
    assert right.status_code == 303
    assert right.headers["location"] == "/runs/xss-1"
    set_cookie = right.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}={cookie_value(TOKEN)};")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute in set_cookie
    assert TOKEN not in set_cookie
    cookies = {COOKIE: cookie_value(TOKEN)}
    with httpx.Client(base_url=token_ui, cookies=cookies, timeout=30) as client:
        assert client.get("/runs/xss-1").status_code == 200
        assert client.get("/").status_code == 200
        assert client.get("/api/v1/runs").status_code == 200  # the page's scripts call the API
        assert client.get("/ui/runs/xss-1/timeline").status_code == 200
        # A write with the cookie, from the page: reaches the route.
        same = client.post("/api/v1/runs/xss-1/cancel", headers={"Origin": token_ui})
        assert same.json()["error"]["code"] == "run_finished"
        # The cookie a page elsewhere made the browser send stands for nothing.
        assert (
            client.get("/api/v1/runs", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 401
        )
    first = asyncio.run(
        _first_event(
            token_ui + "/api/v1/runs/xss-1/events/stream",
            {"Cookie": f"{COOKIE}={cookie_value(TOKEN)}"},
        )
    )
    assert first["seq"] == 1
    # A cookie made for another token (a server restarted with a new one) is refused.
    with httpx.Client(base_url=token_ui, cookies={COOKIE: cookie_value("old")}, timeout=30) as c:
        assert c.get("/api/v1/runs").status_code == 401
        assert c.get("/").status_code == 303
    # A bearer token works on the pages too (a script or a proxy that adds it).
    bearer = {"Authorization": f"Bearer {TOKEN}".encode()}
    assert httpx.get(token_ui + "/", headers=bearer, timeout=30).status_code == 200


def test_sign_in_goes_back_only_to_a_page_of_this_server(token_ui: str) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", ""):
        assert _sign_in(token_ui, TOKEN, target).headers["location"] == "/", target
    out = httpx.post(token_ui + "/ui/logout", headers={"Origin": token_ui}, timeout=30)
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login"
    assert f'{COOKIE}=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]


def test_without_a_token_sign_in_is_not_needed(open_ui: str) -> None:
    answer = httpx.get(open_ui + "/ui/login", timeout=30)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


# -- under a prefix -------------------------------------------------------------------------------


@contextlib.contextmanager
def _mounted(store: str, token: str | None) -> Iterator[str]:
    inner = create_app(LocalEngine(store), ServerSettings(token=token))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with inner.router.lifespan_context(inner):
            yield

    with served(Starlette(routes=[Mount("/runplane", app=inner)], lifespan=lifespan)) as url:
        yield url + "/runplane"


def test_mounted_under_a_prefix_every_link_and_the_cookie_keep_it(store: str) -> None:
    with _mounted(store, TOKEN) as url:
        signed = _sign_in(url, TOKEN, "/runplane/runs/xss-1")
        assert signed.headers["location"] == "/runplane/runs/xss-1"
        assert "Path=/runplane" in signed.headers["set-cookie"]
        cookies = {COOKIE: cookie_value(TOKEN)}
        html = httpx.get(url + "/", cookies=cookies, timeout=30).text
        assert 'href="/runplane/runs/xss-1"' in html
        assert 'src="/runplane/ui/static/ui.js"' in html
        assert 'data-stream="/runplane/ui/runs/stream?"' in html
        run = httpx.get(url + "/runs/xss-1", cookies=cookies, timeout=30).text
        assert 'data-api="/runplane/api/v1/runs/xss-1"' in run
        assert httpx.get(url + "/ui/static/ui.css", timeout=30).status_code == 200
        redirect = httpx.get(url + "/runs/xss-1", timeout=30)
        assert redirect.headers["location"].startswith("/runplane/ui/login?next=")


def test_the_templates_and_static_files_are_package_data() -> None:
    """They are found through the package (jinja2.PackageLoader, StaticFiles(packages=)), so
    they must live inside it: hatch then puts them in the wheel."""
    import runplane_durable.server as server

    here = Path(server.__file__).parent
    assert {p.name for p in (here / "templates").iterdir()} >= {
        "base.html",
        "runs.html",
        "run.html",
    }
    assert {p.name for p in (here / "static").iterdir()} == {"ui.js", "ui.css"}


def test_the_ui_leaves_every_other_path_to_the_api(open_ui: str) -> None:
    """Mounted at the root, the UI matches only its own paths: a method the API's route does
    not take is still its 405 (with Allow), an unknown path its 404."""
    wrong = httpx.put(open_ui + "/api/v1/runs", timeout=30)
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["allow"]
    for path in ("/nope", "/runsx", "/ui/nope"):
        missing = httpx.get(open_ui + path, timeout=30)
        assert missing.status_code == 404, path
        assert missing.json()["error"]["code"] == "not_found"


ORPHAN = """
import asyncio, os, sys
from runplane_durable import LocalEngine
from runplane_durable.records import RunSpec

async def main():
    engine = LocalEngine(sys.argv[1])
    spec = RunSpec(sys.argv[2], "support", {"text": "go"}, "fp", {})
    await engine.open_run(spec, lease_seconds=600)
    os._exit(0)  # dies holding the lease, as a program killed with kill -9 does

asyncio.run(main())
"""


def test_a_run_whose_process_died_is_listed_orphaned_and_only_there(
    tmp_path: Path, store: str
) -> None:
    """Its stored status is running: the state filter reads it as `runplane runs list --state`
    does (regression: `?state=running` listed every run stored running, orphaned ones too)."""
    url = sqlite_url(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", ORPHAN, url, "dead-1"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with served(create_app(LocalEngine(url), ServerSettings())) as ui:

        def ids(query: str) -> list[str]:
            html = httpx.get(ui + "/" + query, timeout=30).text
            return re.findall(r'<tr data-id="([^"]*)">', html)

        assert ids("?state=orphaned") == ["dead-1"]
        assert ids("?state=running") == []
        assert ids("?state=stopped") == []
        html = httpx.get(ui + "/", timeout=30).text
        assert re.search(
            r'<span class="state orphaned" title="its process \(\S+ pid \d+\) is gone', html
        )
        page = httpx.get(ui + "/runs/dead-1", timeout=30).text
        assert 'id="run-state" data-field="label" title="its process' in page
