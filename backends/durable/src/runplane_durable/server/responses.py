"""The API's answers as HTTP: JSON bodies, durable errors with their status codes, and request
bodies read within a size limit.

Every error body is {"error": {"code", "message", "fields"}}: a durable error's own wire form
(`errors.to_wire`), so a client raises the same error the engine raised; problems of the request
itself (bad JSON, too large, unauthorized) use the same shape with codes of their own.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON

if TYPE_CHECKING:
    from ..errors import DurableError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HTTPProblem",
    "JSONResponse",
    "bad_request",
    "error_response",
    "http_exception_response",
    "read_json",
    "status_for",
    "too_large",
]


class JSONResponse(_StarletteJSON):
    """A JSON answer as ASCII: text with a lone surrogate (a model's tool arguments may hold
    one, and a local store keeps it) crosses as its escape instead of failing to encode, and
    the client reads back the very string (Starlette's own writes UTF-8, which cannot)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

# A durable error's HTTP status, by its code (every code has one; tests/durable/server/
# test_security.py checks); a code unknown here is a 500.
_STATUS = {
    "run_not_found": 404,
    "run_leased": 409,
    "run_input_mismatch": 409,
    "run_cancelled": 409,
    "run_finished": 409,
    "task_not_found": 404,
    "task_lease_lost": 409,
    "replay_divergence": 409,
    "run_failed": 409,
    "approval_not_found": 404,
    "approval_conflict": 409,
    "run_state_invalid": 422,
    "unstorable_name": 400,
    "journal_serialization": 400,
    "agent_ref": 400,
    "fork_step": 409,
    "fork_session": 409,
    "remote_context": 400,
    "server": 502,
    "database": 503,
    "schema_version": 503,
}


class HTTPProblem(Exception):
    """A request the server refuses before any engine sees it (400, 401, 403, 404, 413, ...)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "fields": self.fields}
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


def bad_request(message: str, **fields: Any) -> HTTPProblem:
    """A 400 for a request the API cannot take as it is: `message` says what to send instead."""
    return HTTPProblem(400, "bad_request", message, **fields)


# Starlette's own refusals (no such route, a method the route does not take, a body over the
# limit while it streams), as codes in the API's error shape.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def http_exception_response(status: int, detail: str, headers: Any = None) -> JSONResponse:
    """Starlette's HTTPException in the API's error body."""
    code = _HTTP_CODES.get(status, f"http_{status}")
    message = {
        404: "no such route; the API's routes are listed at /api/v1/openapi.json",
        413: "the request body is over the server's limit (runplane server --max-body-bytes)",
    }.get(status, detail)
    body = {"code": code, "message": message, "fields": {}}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def status_for(error: DurableError) -> int:
    return _STATUS.get(error.code, 500)


def error_response(error: DurableError) -> JSONResponse:
    """The error's answer; one that says to try again later (a database that cannot be
    reached for now: `local.failures.mark_link`) carries `Retry-After`, which clients honour."""
    retry_after = getattr(error, "retry_after", None)
    status = status_for(error)
    headers = None
    if status == 503 and isinstance(retry_after, (int, float)):
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return JSONResponse({"error": error.to_wire()}, status_code=status, headers=headers)


_REQUIRED: Any = object()


async def read_json(
    request: Request, *, max_bytes: int | None = None, empty: Any = _REQUIRED
) -> Any:
    """The request's JSON body; HTTPProblem 413 past `max_bytes` (default: the app's
    `ServerSettings.max_body_bytes`; read no further), 400 if it is not JSON. `empty` is what
    an empty body stands for, when the body is optional (else an empty body is a 400)."""
    if max_bytes is None:
        settings = getattr(request.app.state, "settings", None)
        max_bytes = getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    if not body and empty is not _REQUIRED:
        return empty
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise HTTPProblem(
            400, "bad_json", f"the request body is not JSON ({exc}); send a JSON object"
        ) from exc


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have.
    raise ValueError(f"{name} is not a JSON value")


def too_large(max_bytes: int) -> HTTPProblem:
    return HTTPProblem(
        413,
        "too_large",
        f"the request body is over {max_bytes} bytes; the server takes at most that "
        "(runplane server --max-body-bytes)",
        max_bytes=max_bytes,
    )
