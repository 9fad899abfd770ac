"""A run's events as Server-Sent Events, live: GET /api/v1/runs/{run_id}/events/stream.

Each event is sent as `id:` its seq, `event:` its type, `data:` its EventRecord JSON. A client
resumes after the last seq it got (`Last-Event-ID`, which browsers and SSE clients resend on
reconnecting, or `?after=N`); the events are read from the engine in seq order after that seq,
so a reconnect gets no gap and no duplicate. New events are found by reading the engine again:
on PostgreSQL when the run's writer NOTIFYs (the engine's `EventFeed`: one listener per server,
whichever process wrote), or after `ServerSettings.fallback_poll_seconds` without a word; where
the store cannot notify (SQLite), every `ServerSettings.poll_seconds`. The events are always
read from the database by seq, so nothing lives in one server's memory, and a notification lost
(while the listener reconnects) delays an event and never loses one. The stream ends once the
run is finished (completed, failed, cancelled) and every event was sent; a run awaiting approval
keeps it open.

sse-starlette does the protocol's parts: the framing, a keep-alive comment every
`ServerSettings.keepalive_seconds` (proxies close idle connections), stopping the generator
when the client goes away, and ending streams when uvicorn shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from .. import lazy_errors as errors
from ..engine import Engine, EventFeed, EventWatch
from ..events import RunCancelled, RunCompleted, RunFailed
from ..states import FINISHED
from .context import engine_of, known_run
from .query import MAX_SEQ, count_param, query
from .responses import bad_request

__all__ = ["PAGE", "stream_events"]

# A run's outcome events: after one, whether the run finished is read without a pause.
_OUTCOMES = frozenset({RunCompleted.TYPE, RunFailed.TYPE, RunCancelled.TYPE})

# Events read per query: a long history is sent in pages, never all read into memory at once.
PAGE = 500


async def stream_events(request: Request) -> Response:
    after = _resume_after(request)
    run = await known_run(request)  # a 404 before the stream starts
    settings = request.app.state.settings
    feed: EventFeed | None = request.app.state.event_feed
    pause = _Pause(settings.poll_seconds, settings.fallback_poll_seconds)
    return EventSourceResponse(
        _events(engine_of(request), run.id, after, feed, pause),
        ping=settings.keepalive_seconds,  # sse-starlette also sets no-store, no proxy buffering
    )


class _Pause:
    """How a stream waits before it reads again: for the feed's word or the fallback poll, or
    (no feed) the poll interval."""

    def __init__(self, poll_seconds: float, fallback_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.fallback_seconds = fallback_seconds

    async def __call__(self, watch: EventWatch | None) -> None:
        if watch is None:
            await asyncio.sleep(self.poll_seconds)
        else:
            await watch.wait(self.fallback_seconds)


def _resume_after(request: Request) -> int:
    """The seq to send events after: Last-Event-ID wins over ?after= (a reconnecting client
    sends the header and the URL it first used)."""
    after = count_param(query(request, ("after",)), "after", 0, 0, MAX_SEQ)  # checked either way
    header = request.headers.get("last-event-id")
    if header is None:
        return after
    if not (header.isascii() and header.isdigit() and len(header) <= len(str(MAX_SEQ))):
        raise bad_request(
            f"Last-Event-ID must be the seq of an event this stream sent (a whole number), got "
            f"{header[:40]!r}",
            header="Last-Event-ID",
        )
    return int(header)


async def _events(
    engine: Engine, run_id: str, after: int, feed: EventFeed | None, pause: _Pause
) -> AsyncIterator[ServerSentEvent]:
    # Watched before the first read: a notification during any read wakes the next pause.
    with feed.watch(run_id) if feed is not None else contextlib.nullcontext() as watch:
        async for event in _read(engine, run_id, after, watch, pause):
            yield event


async def _read(
    engine: Engine, run_id: str, after: int, watch: EventWatch | None, pause: _Pause
) -> AsyncIterator[ServerSentEvent]:
    last = after
    finished = False
    while True:
        batch = await engine.list_events(run_id, after=last, limit=PAGE)
        for event in batch:
            yield ServerSentEvent(
                json.dumps(event.to_json(), ensure_ascii=False), id=str(event.seq), event=event.type
            )
            last = event.seq
        if len(batch) == PAGE:
            continue
        if batch:
            if batch[-1].type not in _OUTCOMES:  # else see at once whether it is the end
                await pause(watch)
            continue
        if finished:  # nothing after the read that followed seeing it finished: all was sent
            return
        # A run's outcome and its last events commit together, so once it reads finished, one
        # more read of the events gets every one of them.
        try:
            finished = (await engine.get_run(run_id)).status in FINISHED
        except errors.RunNotFoundError:  # pruned meanwhile: nothing more will come
            return
        if not finished:
            await pause(watch)
