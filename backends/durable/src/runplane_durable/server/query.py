"""The API's query parameters and small JSON bodies, read strictly: a value that does not fit is
a 400 saying which parameter, what was sent and what to send.

A parameter the route does not know, or one given twice, is refused too: `?stauts=failed` would
otherwise list every run as if it were the answer.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from starlette.requests import Request

from ..records import RUN_STATUSES, RunStatus
from .responses import bad_request

__all__ = [
    "EVENTS_LIMIT",
    "MAX_SEQ",
    "RUNS_LIMIT",
    "body_object",
    "count_param",
    "query",
    "status_param",
    "time_param",
    "time_value",
]

# The largest page a listing gives (its default when no limit is asked for: RUNS_LIMIT.default).
RUNS_LIMIT = (1, 50, 1000)  # min, default, max
EVENTS_LIMIT = (1, 1000, 10_000)
# The largest event seq a client may resume after: within the store's seq column (a 32-bit
# integer on PostgreSQL), and nine digits, so a Last-Event-ID's pattern says it exactly.
MAX_SEQ = 10**9 - 1


def query(request: Request, known: Collection[str]) -> dict[str, str]:
    """The request's query parameters, each once and each one of `known`."""
    items = request.query_params.multi_items()
    names = [name for name, _ in items]
    unknown = sorted({n for n in names if n not in known})
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise bad_request(
            f"unknown query parameter {', '.join(unknown)}; this route takes: {allowed}",
            parameters=unknown,
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise bad_request(
            f"query parameter {', '.join(repeated)} given more than once; give each once",
            parameters=repeated,
        )
    return dict(items)


def count_param(params: Mapping[str, str], name: str, low: int, default: int, high: int) -> int:
    """An integer parameter in [low, high], `default` when absent."""
    text = params.get(name)
    if text is None:
        return default
    value = int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None
    if value is None or not low <= value <= high:
        raise bad_request(
            f"{name} must be a whole number from {low} to {high}, got {text!r}", parameter=name
        )
    return value


def status_param(params: Mapping[str, str], name: str = "status") -> RunStatus | None:
    text = params.get(name)
    if text is None:
        return None
    if text not in RUN_STATUSES:
        raise bad_request(
            f"{name} must be a run status, one of: {', '.join(RUN_STATUSES)}; got {text!r}",
            parameter=name,
        )
    status: RunStatus = text  # type: ignore[assignment]
    return status


def time_param(params: Mapping[str, str], name: str) -> float | None:
    """A time in seconds since the epoch (a decimal number), or None when absent."""
    text = params.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not text.strip():
        raise bad_request(
            f"{name} must be a time in seconds since the epoch (a number such as "
            f"1767225600.5), got {text!r}",
            parameter=name,
        )
    return value


def time_value(body: Mapping[str, Any], name: str) -> float:
    """A required member of a JSON body holding a time in seconds (a finite number)."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_request(
            f"{name} must be a time in seconds since the epoch (a JSON number), got "
            f"{_shown(value) if name in body else 'nothing'}",
            member=name,
        )
    return float(value)


def body_object(
    data: Any, members: Collection[str], *, required: Collection[str] = ()
) -> dict[str, Any]:
    """`data` as a JSON object holding only `members`, every one of `required` among them."""
    if not isinstance(data, dict):
        raise bad_request(f"the request body must be a JSON object, got {_shown(data)}")
    unknown = sorted(set(data) - set(members))
    missing = sorted(set(required) - set(data))
    if unknown or missing:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(map(repr, unknown))}"] if unknown else []
        raise bad_request(
            f"the request body has {'; '.join(parts)}; its members are: "
            f"{', '.join(sorted(members))}",
            unknown=unknown,
            missing=missing,
        )
    return data


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"
