"""The web UI's routes: the runs list at `/`, a run's page at `/runs/{run_id}`, what their
scripts read to stay live, sign-in, and the static files.

Pages are Jinja2 templates rendered by the server, autoescaped: whatever a model or a tool wrote
reaches the page as text. The scripts (static/ui.js, no build step, no CDN) keep them live: the
list reads `/ui/runs/stream` (SSE: the rows, each time they change, with each run's state as
`states.run_state` derives it); a run's page listens to the API's own event stream
(`/api/v1/runs/{id}/events/stream`) and, at each event, reads the new timeline items from
`/ui/runs/{id}/timeline?after=SEQ`, the same items the template rendered, written with
`textContent`. Cancel and the approval buttons call the JSON API. With a token set, a browser
signs in at /ui/login (`ui_auth`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Scope

from .. import lazy_errors as errors
from ..events import EVENT_TYPES
from ..states import STATES
from .context import engine_of, run_id_of
from .query import MAX_SEQ, count_param, query
from .responses import HTTPProblem, JSONResponse, status_for
from .routing import RawPathRoute
from .ui_auth import COOKIE, cookie_value, has_access
from .ui_views import LIST_LIMIT, list_rows, run_page

__all__ = ["LIST_POLL_SECONDS", "routes"]

# How often an open runs list asks the engine for its rows (each state is derived anew, so a run
# whose process died shows orphaned within about this long, with no event written).
LIST_POLL_SECONDS = 1.0
# What a page may load: this server's own scripts and styles only, never inline script, never
# framed by another site (a framed approve button could be clicked through a decoy).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.PackageLoader("runplane_durable.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)


def _token(request: Request) -> str | None:
    token: str | None = request.app.state.settings.token
    return token


def _base(request: Request) -> str:
    """The prefix the app is mounted under ("" at the root): every link the pages make."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    context = {
        "base": _base(request),
        "signed_in": _token(request) is not None,
        **context,
    }
    return _templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=_HEADERS
    )


def _error_page(request: Request, status: int, message: str) -> Response:
    return _page(request, "error.html", {"status": status, "message": message}, status)


def _sign_in(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        f"{_base(request)}/ui/login?next={quote(here, safe='')}", status_code=303
    )


def _blank(value: str | None) -> str | None:
    return value if value else None


async def runs_page(request: Request) -> Response:
    if not has_access(request, _token(request)):
        return _sign_in(request)
    try:
        params = query(request, ("state", "agent"))
        state, agent = _filters(params)
        rows = await list_rows(engine_of(request), state=state, agent=agent)
    except HTTPProblem as problem:
        return _error_page(request, problem.status, problem.message)
    except errors.DurableError as error:
        return _error_page(request, status_for(error), str(error))
    return _page(
        request,
        "runs.html",
        {
            "rows": rows,
            "states": STATES,
            "state": state or "",
            "agent": agent or "",
            "limit": LIST_LIMIT,
            "stream": f"{_base(request)}/ui/runs/stream?{request.url.query}",
        },
    )


def _filters(params: dict[str, str]) -> tuple[str | None, str | None]:
    state = _blank(params.get("state"))
    if state is not None and state not in STATES:
        raise HTTPProblem(
            400,
            "bad_request",
            f"state must be one of: {', '.join(STATES)}; got {state!r}",
            parameter="state",
        )
    return state, _blank(params.get("agent"))


async def runs_stream(request: Request) -> Response:
    if not has_access(request, _token(request)):
        raise _unauthorized()
    state, agent = _filters(query(request, ("state", "agent")))
    return EventSourceResponse(
        _snapshots(request, state, agent),
        ping=request.app.state.settings.keepalive_seconds,
    )


async def _snapshots(
    request: Request, state: str | None, agent: str | None
) -> AsyncIterator[ServerSentEvent]:
    """The list's rows each time they differ from those sent last (the first at once)."""
    engine = engine_of(request)
    sent: str | None = None
    while True:
        try:
            rows = [r.to_json() for r in await list_rows(engine, state=state, agent=agent)]
        except errors.DurableError as error:  # the database away: say so, and keep trying
            yield ServerSentEvent(json.dumps({"error": str(error)}), event="problem")
        else:
            shown = json.dumps([{k: v for k, v in r.items() if k != "age"} for r in rows])
            if shown != sent:
                sent = shown
                yield ServerSentEvent(
                    json.dumps({"runs": rows, "now": time.time()}, ensure_ascii=False),
                    event="runs",
                )
        await asyncio.sleep(LIST_POLL_SECONDS)


def _unauthorized() -> HTTPProblem:
    return HTTPProblem(
        401,
        "unauthorized",
        "this server needs a token: sign in at /ui/login, or send 'Authorization: Bearer "
        "TOKEN' (RUNPLANE_TOKEN)",
    )


async def run_page_route(request: Request) -> Response:
    if not has_access(request, _token(request)):
        return _sign_in(request)
    try:
        query(request, ())
        view, items = await run_page(engine_of(request), run_id_of(request))
    except HTTPProblem as problem:
        return _error_page(request, problem.status, problem.message)
    except errors.DurableError as error:
        return _error_page(request, status_for(error), str(error))
    base = _base(request)
    return _page(
        request,
        "run.html",
        {
            "run": view,
            "items": items,
            "api": f"{base}/api/v1/runs/{view.path}",
            "timeline": f"{base}/ui/runs/{view.path}/timeline",
            "event_types": json.dumps(list(EVENT_TYPES)),
        },
    )


async def timeline(request: Request) -> Response:
    """The run's facts and the timeline items after `after`, for its page's script."""
    if not has_access(request, _token(request)):
        raise _unauthorized()
    after = count_param(query(request, ("after",)), "after", 0, 0, MAX_SEQ)
    view, items = await run_page(engine_of(request), run_id_of(request), after=after)
    return JSONResponse(
        {"run": view.to_json(), "items": [i.to_json() for i in items]},
        headers={"Cache-Control": "no-store"},
    )


async def login(request: Request) -> Response:
    token = _token(request)
    if token is None:  # nothing to sign in to
        return RedirectResponse(f"{_base(request)}/", status_code=303)
    if request.method == "GET":
        params = query(request, ("next",))
        target = _next(request, params.get("next"))
        return _page(request, "login.html", {"next": target, "wrong": False})
    form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    given = (form.get("token") or [""])[0].strip()
    target = _next(request, (form.get("next") or [""])[0])
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        return _page(request, "login.html", {"next": target, "wrong": True}, 403)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie_value(token),
        path=_base(request) or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _next(request: Request, target: str | None) -> str:
    """Where to go after signing in: a path of this server only (never another site)."""
    base = _base(request)
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return f"{base}/"
    return target


async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{_base(request)}/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=_base(request) or "/", httponly=True, samesite="strict")
    return response


class _Pages(Mount):
    """The UI's routes, mounted at the root but matching only the UI's own paths (`/`,
    `/runs/...`, `/ui/...`): every other path stays the API's, with its own 404s and 405s."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path == "/" or path.startswith(("/runs/", "/ui/")):
            return super().matches(scope)
        return Match.NONE, {}


def routes() -> list[BaseRoute]:
    """The UI's routes, as one mount: pages, not API (the OpenAPI document lists the API's
    routes alone)."""
    return [
        _Pages(
            "",
            routes=[
                Route("/", runs_page, methods=["GET"]),
                RawPathRoute("/runs/{run_id}", run_page_route, methods=["GET"]),
                Route("/ui/runs/stream", runs_stream, methods=["GET"]),
                RawPathRoute("/ui/runs/{run_id}/timeline", timeline, methods=["GET"]),
                Route("/ui/login", login, methods=["GET", "POST"]),
                Route("/ui/logout", logout, methods=["POST"]),
                Mount(
                    "/ui/static",
                    app=StaticFiles(packages=[("runplane_durable.server", "static")]),
                    name="static",
                ),
            ],
        )
    ]
