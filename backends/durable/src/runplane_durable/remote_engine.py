"""`RemoteEngine`: the engine contract over HTTP, against `runplane server` (RUNPLANE_SERVER_URL).

The session is the same `JournaledSession` a `LocalEngine` gives; only its writer differs: each
write is one POST of the write's JSON form (`writes.py`) to the server's write side
(`server/sessions_api.py`), which applies it on its database. Every request carries what its
fencing needs (run id, lease holder, lease length, seqs), so the server keeps nothing and any
server on the database can answer any request, a restarted one too.

A request whose answer never came (the connection refused or reset, the server killed) is sent
again, with backoff, for up to `retry_seconds`; a write sent again says so (`?retry=1`), and the
server recognises one that committed the first time instead of writing it twice. Errors cross
the wire in their wire form and are raised here as themselves (a lost lease is `RunLeasedError`,
as locally). A server that stays away past the bound gives `ServerError`, a `DatabaseError`
naming the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from . import lazy_errors as errors
from .names import check_session_id, check_write_key
from .owner import current_owner, owner_is_dead, requester, retire
from .records import (
    CANCEL_MODES,
    DEFAULT_QUEUE,
    Approval,
    CancelMode,
    EventRecord,
    JournalRecord,
    Requester,
    RunRecord,
    RunSpec,
    RunStatus,
    Snapshot,
    TaskLease,
    TaskRecord,
    TaskResult,
    TaskSpec,
    check_claim_limit,
    check_listing,
    check_status,
    choose_claimable,
)
from .session import MUST_WAIT, Fenced, JournaledSession, MustWait, say_opened
from .writes import Opened, Release, Write

if TYPE_CHECKING:  # imported when the first request is made: a local program never needs it
    import httpx

__all__ = [
    "DEFAULT_RETRY_SECONDS",
    "DEFAULT_TIMEOUT",
    "ENV_SERVER_RETRY_SECONDS",
    "ENV_SERVER_URL",
    "ENV_TOKEN",
    "RemoteEngine",
    "check_token",
    "is_server_url",
]

ENV_SERVER_URL = "RUNPLANE_SERVER_URL"
ENV_TOKEN = "RUNPLANE_TOKEN"
ENV_SERVER_RETRY_SECONDS = "RUNPLANE_SERVER_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
# Longer than the server's own longest wait for its database (RUNPLANE_DB_TIMEOUT, 120 s), so
# the server's answer, not the client's patience, says when a write could not be made.
DEFAULT_TIMEOUT = 150.0
_JSON_HEADERS = {"Content-Type": "application/json"}
_PAGE = 500  # runs or events per request when all of them are asked for
log = logging.getLogger("runplane_durable")


def is_server_url(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def check_token(token: str) -> str:
    """`token` if it can travel in an `Authorization: Bearer` header; else ValueError.

    HTTP sends header values as ASCII: a token with other characters (or spaces, which end the
    header's token part) could be set on a server but never sent by a client, so both refuse it.
    """
    bad = sorted({c for c in token if not "!" <= c <= "~"})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise ValueError(
            f"{ENV_TOKEN} may hold only printable ASCII without spaces (it is sent as "
            f"'Authorization: Bearer TOKEN'), but it has {shown}; choose another secret, for "
            "example: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


class RemoteEngine:
    """Engine behind a runplane server at `url` (`http://127.0.0.1:6767`).

    `token` (default RUNPLANE_TOKEN) is sent as `Authorization: Bearer ...`. `retry_seconds`
    (default RUNPLANE_SERVER_RETRY_SECONDS, else 60) bounds how long a request whose answer was
    lost is sent again; `timeout` how long one answer may take. `read_only=True` is for looking:
    `open_run` is refused. `transport` makes each client's httpx transport (default:
    `http1.Http1Transport`; `httpx.AsyncHTTPTransport` is httpx's own). One HTTP client per
    event loop, made on first use, reused for every request of that loop (`run_sync` runs each
    call on a new loop: a client never outlives its loop's use).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        retry_seconds: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        read_only: bool = False,
        transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        if not is_server_url(url) or not urlsplit(url).hostname:
            raise ValueError(
                f"{url!r} is not a runplane server's URL; give one such as http://127.0.0.1:6767 "
                f"(set {ENV_SERVER_URL}, or leave it unset to keep runs in a local database)"
            )
        self.url = url.rstrip("/")
        self.token = token if token is not None else (os.environ.get(ENV_TOKEN) or None)
        if self.token is not None:
            check_token(self.token)
        self.retry_seconds = (
            retry_seconds if retry_seconds is not None else _env_seconds(ENV_SERVER_RETRY_SECONDS)
        )
        self.timeout = timeout
        self.read_only = read_only
        self._transport = transport
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._clients_lock = threading.Lock()  # threads that each call run_sync share the engine
        # Leases this process could not give back (the server was away), by run; given back
        # before the next opening.
        self._unreleased: dict[str, Release] = {}

    def __repr__(self) -> str:
        return f"RemoteEngine({self.url!r})"

    def describe(self) -> str:
        return f"runplane server {self.url}"

    # -- HTTP ------------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        with self._clients_lock:
            client = self._clients.get(loop)
            if client is None:
                for dead in [other for other in self._clients if other.is_closed()]:
                    del self._clients[dead]  # its connections went with its loop
                headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
                client = httpx.AsyncClient(
                    base_url=self.url,
                    headers=headers,
                    transport=(self._transport or _http1)(),
                    timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                )
                self._clients[loop] = client
            return client

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        write: bool = False,
    ) -> Any:
        """The answer's JSON; a durable error the server sent, raised as itself.

        An answer lost on the way (no connection, a reset, a server killed mid-answer, a proxy's
        502/503/504 without the API's error), and a 503 with `Retry-After` (the server's
        database cannot be reached for now), is asked for again with backoff within
        `retry_seconds`; a `write` asked again says so, so the server recognises it if the first
        one committed.
        """
        import httpx

        client = self._client()
        # As ASCII JSON: a string with a lone surrogate (a model's tool arguments) crosses as
        # its escape; httpx's own json= writes UTF-8, which cannot hold it.
        content = None if body is None else json.dumps(body, allow_nan=False).encode("ascii")
        headers = None if body is None else _JSON_HEADERS
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        tries = 0
        while True:
            tries += 1
            query = dict(params or {})
            if write and tries > 1:
                query["retry"] = "1"
            problem: str
            try:
                response = await client.request(
                    method, path, content=content, headers=headers, params=query or None
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                status = None
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise self._unexpected(method, path, response) from None
                error = _wire_error(response)
                # 503 with Retry-After: the server is up, its database cannot be reached for
                # now (restarting): asked again, as for a lost answer.
                unavailable = response.status_code == 503 and "retry-after" in response.headers
                if error is not None and not unavailable:
                    raise error
                if response.status_code not in (502, 503, 504):
                    raise self._unexpected(method, path, response)
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                status = response.status_code
                if error is not None and time.monotonic() + delay > deadline:
                    raise error  # the server's own word on its database, past the bound
            if time.monotonic() + delay > deadline:
                raise errors.ServerError(
                    f"cannot reach the runplane server at {self.url} ({problem}); tried {tries} "
                    f"times over {self.retry_seconds:g} s. Start it (`runplane server`), check "
                    f"{ENV_SERVER_URL}, or unset {ENV_SERVER_URL} to keep runs in a local "
                    f"database. Every step acknowledged before this one is kept; run the same "
                    "run id again to resume.",
                    server=self.url,
                    problem=problem,
                    status=status,
                )
            if tries == 1:
                continue  # at once and unsaid: a kept-alive connection the server just closed
            if tries == 2:
                log.warning(
                    "the runplane server at %s did not answer (%s); retrying", self.url, problem
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _unexpected(self, method: str, path: str, response: httpx.Response) -> Exception:
        return errors.ServerError(
            f"the runplane server at {self.url} answered {method} {path} with HTTP "
            f"{response.status_code} and nothing of its API ({response.text[:200]!r}). Is "
            f"{ENV_SERVER_URL} the address of a `runplane server` of this version?",
            server=self.url,
            problem=response.text[:200],
            status=response.status_code,
        )

    # -- sessions ----------------------------------------------------------------------------------

    def _refuse_read_only(self, what: str = "runs execute") -> None:
        if self.read_only:
            raise errors.DatabaseError(
                f"this RemoteEngine reads the {self.describe()} only (read_only=True); {what} "
                "on an engine made without it.",
                database=self.describe(),
            )

    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> JournaledSession:
        self._refuse_read_only()
        await self._release_left_over()
        owner = current_owner()
        try:
            opened = await self._open(spec, owner, lease_seconds)
        except BaseException:
            retire(owner)
            raise
        say_opened(spec, opened, self.describe())
        return JournaledSession(
            _RemoteWriter(self), opened, owner=owner, lease_seconds=lease_seconds
        )

    async def _open(self, spec: RunSpec, owner: str, lease_seconds: float) -> Opened:
        body = {
            "spec": spec.to_json(),
            "owner": owner,
            "lease_seconds": lease_seconds,
            "dead_holder": None,
        }
        try:
            return Opened.from_json(await self._request("POST", "/api/v1/sessions", body=body))
        except errors.RunLeasedError as exc:
            # The server knows dead holders of its own host; this process knows those of its
            # host (and its own executions that ended): such a holder is taken over at once.
            if exc.holder is None or not owner_is_dead(exc.holder):
                raise
            body["dead_holder"] = exc.holder
        return Opened.from_json(await self._request("POST", "/api/v1/sessions", body=body))

    async def _release_left_over(self) -> None:
        for run_id, release in list(self._unreleased.items()):
            try:
                await self._send(release)
            except errors.DatabaseError:
                log.warning("run %s still holds a lease this process could not give back", run_id)
                return
            self._unreleased.pop(run_id, None)
            log.info("gave back the lease of run %s after the server came back", run_id)

    async def _send(self, write: Write) -> Fenced:
        try:
            answer = await self._request(
                "POST", f"/api/v1/sessions/{write.NAME}", body=write.to_json(), write=True
            )
        except errors.RunLeasedError as exc:
            if exc.taken_over:
                return None  # the session raises it, as a LocalEngine's does
            raise
        cancel: CancelMode | None = answer["cancel_requested"]
        return cancel, int(answer["first_event_seq"])

    async def _cancel_requested(self, run_id: str) -> CancelMode | None:
        answer = await self._request("GET", "/api/v1/sessions/cancel", params={"run_id": run_id})
        found: CancelMode | None = answer["cancel_requested"]
        return found

    # -- reads and admin (the routes of the server's read side) ------------------------------------

    def _run_path(self, run_id: str, tail: str = "") -> str:
        return f"/api/v1/runs/{_segment(run_id)}{tail}"

    async def get_run(self, run_id: str) -> RunRecord:
        return RunRecord.from_json(await self._request("GET", self._run_path(run_id)))

    async def list_runs(
        self,
        *,
        limit: int | None = 50,
        status: RunStatus | None = None,
        agent: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        cursor: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, page by page until `limit` (None: all) or the last page."""
        if status is not None:
            check_status(status)  # a caller's string (the CLI's --status): say what is allowed
        check_listing(limit=limit, created_after=created_after, created_before=created_before)
        filters = {
            "status": status,
            "agent": agent,
            "created_after": created_after,
            "created_before": created_before,
        }
        params = {k: v for k, v in filters.items() if v is not None}
        found: list[RunRecord] = []
        while limit is None or len(found) < limit:
            page = _PAGE if limit is None else min(_PAGE, limit - len(found))
            query = {**params, "limit": page, **({} if cursor is None else {"cursor": cursor})}
            answer = await self._request("GET", "/api/v1/runs", params=query)
            found += [RunRecord.from_json(r) for r in answer["runs"]]
            cursor = answer.get("next_cursor")
            if not cursor or not answer["runs"]:
                break
        return found

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        found: list[EventRecord] = []
        while limit is None or len(found) < limit:
            page = _PAGE if limit is None else min(_PAGE, limit - len(found))
            try:
                answer = await self._request(
                    "GET", self._run_path(run_id, "/events"), params={"after": after, "limit": page}
                )
            except errors.RunNotFoundError:
                return found  # an unknown run has none
            events = [EventRecord.from_json(e) for e in answer["events"]]
            found += events
            if len(events) < page:
                break
            after = events[-1].seq
        return found

    async def read_journal(self, run_id: str) -> list[JournalRecord]:
        try:
            answer = await self._request("GET", self._run_path(run_id, "/journal"))
        except errors.RunNotFoundError:
            return []  # an unknown run has none
        return [JournalRecord.from_json(r) for r in answer["journal"]]

    async def cancel_run(
        self, run_id: str, *, mode: CancelMode = "immediate", by: Requester | None = None
    ) -> RunRecord:
        """Asked of the server (POST /runs/{id}/cancel), which writes the request on behalf of
        `by` (else this process: its host, pid and user), recording itself as the way it came
        (the `cancel_requested` event's `via`)."""
        if mode not in CANCEL_MODES:  # as a local engine says it, before asking
            modes = ", ".join(CANCEL_MODES)
            raise ValueError(f"{mode!r} is not a cancel mode; use one of: {modes}")
        self._refuse_read_only("runs are cancelled")
        asker = by if by is not None else Requester(*requester())
        body = {
            "mode": mode,
            "requested_by": {"host": asker.host, "pid": asker.pid, "user": asker.user},
        }
        answer = await self._request("POST", self._run_path(run_id, "/cancel"), body=body)
        return RunRecord.from_json(answer)

    # -- approvals: decided and verified by the server's engine (its key stays there) ----------

    async def list_approvals(self, run_id: str) -> list[Approval]:
        answer = await self._request("GET", self._run_path(run_id, "/approvals"))
        return [Approval.from_json(a) for a in answer["approvals"]]

    async def decide(
        self,
        run_id: str,
        call_id: str | None,
        *,
        approve: bool,
        always: bool = False,
        message: str | None = None,
        by: str | None = None,
    ) -> tuple[RunRecord, list[Approval]]:
        """Asked of the server (POST /runs/{id}/approvals), which records `by` (else this
        process's user and host) with the client it came from."""
        self._refuse_read_only("approvals are decided")
        if by is None:
            host, _, user = requester()
            by = f"{user}@{host}" if user else host
        body = {
            "call_id": call_id,
            "decision": "approve" if approve else "reject",
            "always": bool(always),
            "message": message,
            "decided_by": by,
        }
        answer = await self._request("POST", self._run_path(run_id, "/approvals"), body=body)
        return RunRecord.from_json(answer["run"]), [
            Approval.from_json(a) for a in answer["approvals"]
        ]

    async def load_snapshot(self, run_id: str) -> Snapshot | None:
        answer = await self._request("GET", self._run_path(run_id, "/snapshot"))
        found = answer["snapshot"]
        return None if found is None else Snapshot.from_json(found)

    async def prune(self, *, finished_before: float) -> int:
        self._refuse_read_only("runs are pruned")
        answer = await self._request(
            "POST", "/api/v1/prune", body={"finished_before": float(finished_before)}
        )
        return int(answer["deleted"])

    async def fork_run(
        self, run_id: str, *, at: int, new_run_id: str, queue: str | None = DEFAULT_QUEUE
    ) -> RunRecord:
        """One request; sent again if its answer was lost, which finds the fork it made."""
        self._refuse_read_only("runs are forked")
        answer = await self._request(
            "POST",
            self._run_path(run_id, "/fork"),
            body={"at": at, "run_id": new_run_id, "queue": queue},
        )
        return RunRecord.from_json(answer)

    # -- queued runs (workers, Runner.start) -------------------------------------------------------

    async def enqueue_run(self, spec: RunSpec) -> RunRecord:
        self._refuse_read_only("runs are started")
        answer = await self._request("POST", "/api/v1/runs", body={"spec": spec.to_json()})
        return RunRecord.from_json(answer)

    async def claimable_runs(
        self,
        *,
        agent_refs: Sequence[str],
        agent_names: Sequence[str],
        queue: str,
        limit: int,
    ) -> list[RunRecord]:
        """The server gives the candidates; this process chooses, as it alone knows which
        holders of its host are dead (`records.choose_claimable`, what a LocalEngine does)."""
        check_claim_limit(limit)
        body = {
            "agent_refs": list(agent_refs),
            "agent_names": list(agent_names),
            "queue": queue,
            "limit": limit,
            "host": socket.gethostname(),
        }
        answer = await self._request("POST", "/api/v1/claimable-runs", body=body)
        free = [RunRecord.from_json(r) for r in answer["free"]]
        held = [RunRecord.from_json(r) for r in answer["held_on_host"]]
        return choose_claimable(free, held, limit=limit, is_dead=owner_is_dead)

    # -- remote tool tasks -------------------------------------------------------------------------

    async def enqueue_task(self, spec: TaskSpec) -> TaskRecord:
        answer = await self._request("POST", "/api/v1/tasks", body={"spec": spec.to_json()})
        return TaskRecord.from_json(answer)

    async def get_task(self, task_id: str) -> TaskRecord:
        path = f"/api/v1/tasks/{_segment(task_id)}"
        return TaskRecord.from_json(await self._request("GET", path))

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        answer = await self._request("GET", "/api/v1/tasks", params={"run_id": run_id})
        return [TaskRecord.from_json(t) for t in answer["tasks"]]

    async def claim_task(
        self, *, queue: str, tools: Sequence[str], owner: str, lease_seconds: float
    ) -> TaskRecord | None:
        """A claim whose answer is lost is not sent again as the same claim: the task it took
        (if it took one) is settled as abandoned once its lease expires, and retried."""
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        if not tools:
            return None
        body = {
            "queue": queue,
            "tools": list(tools),
            "owner": owner,
            "lease_seconds": float(lease_seconds),
        }
        answer = await self._request("POST", "/api/v1/tasks/claim", body=body)
        return None if answer["task"] is None else TaskRecord.from_json(answer["task"])

    async def heartbeat_task(self, lease: TaskLease) -> None:
        await self._request("POST", "/api/v1/tasks/heartbeat", body={"lease": lease.to_json()})

    async def complete_task(self, lease: TaskLease, result: TaskResult) -> TaskRecord:
        body = {"lease": lease.to_json(), "result": result.to_json()}
        answer = await self._request("POST", "/api/v1/tasks/complete", body=body, write=True)
        return TaskRecord.from_json(answer)

    async def fail_task(self, lease: TaskLease, error: str) -> TaskRecord:
        body = {"lease": lease.to_json(), "error": error}
        answer = await self._request("POST", "/api/v1/tasks/fail", body=body, write=True)
        return TaskRecord.from_json(answer)

    # -- durable sessions (server/conversations_api.py) -------------------------------------------

    def _session_path(self, session_id: str, tail: str) -> str:
        return f"/api/v1/durable-sessions/{_segment(check_session_id(session_id))}{tail}"

    async def session_items(self, session_id: str, *, limit: int | None = None) -> list[Any]:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a count of items (0 or more) or None, got {limit!r}")
        if limit == 0:
            return []  # none, as the engines (and the SDK's own sessions) give: no request
        params = None if limit is None else {"limit": limit}
        answer = await self._request("GET", self._session_path(session_id, "/items"), params=params)
        found: list[Any] = answer["items"]
        return found

    async def add_session_items(
        self, session_id: str, items: Sequence[Any], *, write_key: str
    ) -> bool:
        """Sent again if its answer is lost: the key makes the second one write nothing."""
        self._refuse_read_only("sessions are written")
        from .serde import load_json, session_item_text  # pydantic: only where sessions are

        body = {
            "items": [load_json(session_item_text(i)) for i in items],
            "write_key": check_write_key(write_key),
        }
        path = self._session_path(session_id, "/items")
        answer = await self._request("POST", path, body=body, write=True)
        return bool(answer["written"])

    async def pop_session_item(self, session_id: str) -> Any | None:
        self._refuse_read_only("sessions are written")
        answer = await self._request("POST", self._session_path(session_id, "/pop"))
        return answer["item"]

    async def clear_session(self, session_id: str) -> None:
        self._refuse_read_only("sessions are written")
        await self._request("POST", self._session_path(session_id, "/clear"))

    async def dispose(self) -> None:
        """Close this loop's HTTP client, after giving back what could not be given back;
        forget those of other loops (their connections can only be closed on their loop)."""
        loop = asyncio.get_running_loop()
        if self._unreleased and self._clients.get(loop) is not None:
            with contextlib.suppress(errors.DatabaseError):
                await self._release_left_over()
        with self._clients_lock:
            clients, self._clients = dict(self._clients), weakref.WeakKeyDictionary()
        for owner, client in clients.items():
            if owner is loop:
                await client.aclose()


class _RemoteWriter:
    """A session's writes, each one request to the server (which applies it in one
    transaction); never applied on the caller's thread without waiting."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    def write_now(self, write: Write) -> Fenced | MustWait:
        return MUST_WAIT

    async def write(self, write: Write) -> Fenced:
        return await self._engine._send(write)

    async def cancel_requested(self, run_id: str) -> CancelMode | None:
        return await self._engine._cancel_requested(run_id)

    def unreleased(self, release: Release) -> None:
        self._engine._unreleased[release.run_id] = release

    async def close(self) -> None:
        """Nothing to give back: the engine's client serves every session of its loop."""


def _http1() -> httpx.AsyncBaseTransport:
    from .http1 import Http1Transport

    return Http1Transport()


def _wire_error(response: httpx.Response) -> Exception | None:
    """The durable error an API answer carries ({"error": {"code", "message", "fields"}}); a
    request the server found malformed (`bad_request`: an argument no engine takes, such as a
    listing's cursor) is the ValueError a local engine raises, with the server's message."""
    try:
        data = response.json()
    except ValueError:
        return None
    wire = data.get("error") if isinstance(data, dict) else None
    try:
        error = errors.error_from_wire(wire)
    except ValueError:
        return None
    if error.code == "bad_request":
        return ValueError(error.message)
    return error


def _env_seconds(name: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return DEFAULT_RETRY_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(
            f"{name}={raw!r} is not a number of seconds; unset it for {DEFAULT_RETRY_SECONDS:g}"
        )
    return value


def _segment(value: str) -> str:
    """`value` as one path segment: every reserved character percent-encoded, dots too, since
    httpx (as RFC 3986 asks) drops the segments `.` and `..` from a path before sending it."""
    return quote(value, safe="").replace(".", "%2E")
