"""The API's answers as HTTP: JSON bodies, durable errors with their status codes, and request
bodies read within a size limit.

Every error body is {"error": {"code", "message", "fields"}}: a durable error's own wire form
(`errors.to_wire`), so a client raises the same error the engine raised; problems of the request
itself (bad JSON, too large, unauthorized) use the same shape with codes of their own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from ..errors import DurableError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "HTTPProblem", "error_response", "read_json", "status_for"]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

# A durable error's HTTP status, by its code; any other code is a 500.
_STATUS = {
    "run_not_found": 404,
    "run_leased": 409,
    "run_input_mismatch": 409,
    "run_cancelled": 409,
    "run_finished": 409,
    "replay_divergence": 409,
    "unstorable_name": 400,
    "journal_serialization": 400,
    "database": 503,
    "schema_version": 503,
}


class HTTPProblem(Exception):
    """A request the server refuses before any engine sees it (400, 401, 403, 404, 413, ...)."""

    def __init__(self, status: int, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "fields": self.fields}
        return JSONResponse({"error": body}, status_code=self.status)


def status_for(error: DurableError) -> int:
    return _STATUS.get(error.code, 500)


def error_response(error: DurableError) -> JSONResponse:
    return JSONResponse({"error": error.to_wire()}, status_code=status_for(error))


async def read_json(request: Request, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """The request's JSON body; HTTPProblem 413 past `max_bytes` (read no further), 400 if it is
    not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPProblem(
            400, "bad_json", f"the request body is not JSON ({exc}); send a JSON object"
        ) from exc


def _too_large(max_bytes: int) -> HTTPProblem:
    return HTTPProblem(
        413,
        "too_large",
        f"the request body is over {max_bytes} bytes; the server takes at most that "
        "(runplane server --max-body-bytes)",
        max_bytes=max_bytes,
    )
