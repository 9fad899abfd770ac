"""A lean HTTP/1.1 transport for httpx: keep-alive connections on asyncio streams, for the small
JSON requests a `RemoteEngine` makes on every step.

httpx's default transport (httpcore over anyio and h11) spends about 0.6 ms of CPU per request
(measured on the 2-core VM), five times what httpx's own models cost; a run in server mode makes
two requests per step, so that alone was over a millisecond per step. This transport keeps
httpx's API (the client, its requests, responses, timeouts and exception classes, so the engine's
retry logic is unchanged) and does the wire itself: one write per request, a status line, headers,
and a `Content-Length` or chunked body. Idle connections are kept per transport (one transport per
event loop), and one a server closed meanwhile fails with a `RemoteProtocolError`, which the
engine retries. At most `max_connections` are open to a host at once (as httpx's own pool
limits them): further requests wait for one to come free (bounded by the request's `pool`
timeout, `PoolTimeout`), not for a connect of their own, which on a loop busy with a thousand
runs timed out and was retried until the runs failed, holding two sockets per run meanwhile.

Each connection has TCP keepalive (probes after 10 s idle, every 5 s, 3 unanswered: a dead link
is found in about 25 s) and, where the system has it, TCP_USER_TIMEOUT (30 s for data sent and
never acknowledged): a request in flight when the link to its server dropped fails as a broken
connection, which the engine retries, instead of waiting out its read timeout (150 s), which is
that long so a live server's slow database is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
from collections.abc import Awaitable
from typing import TypeVar

import httpx

__all__ = ["DEFAULT_MAX_CONNECTIONS", "Http1Transport"]

_MAX_HEAD = 64 * 1024
# Connections to one host at once, per transport (per event loop): a server answers requests
# one at a time per connection, and a few dozen keep its two cores busy.
DEFAULT_MAX_CONNECTIONS = 32
# A dead link is found by keepalive probes (idle, interval, count: about 25 s) and, for data sent
# and never acknowledged, TCP_USER_TIMEOUT (ms); where the system lacks an option, it is skipped.
_KEEPALIVE = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
_USER_TIMEOUT_MS = 30_000
T = TypeVar("T")


async def _within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`awaitable`, raising TimeoutError past `seconds` (None: no bound).

    Not `asyncio.wait_for` on 3.11: it can swallow a cancellation that arrives as the awaitable
    completes (CPython issue 86296), and a cancelled run must stop at its write, not go on.
    """
    if seconds is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


class Http1Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive to the hosts of the requests it is given."""

    def __init__(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError(f"max_connections must be an int, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.max_connections = max_connections
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.scheme, url.host, port)
        body = await request.aread()
        head = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in request.headers.raw]
        if not any(name.lower() == b"content-length" for name, _ in request.headers.raw):
            head.append(b"Content-Length: %d\r\n" % len(body))
        data = b"".join([*head, b"\r\n", body])
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self.max_connections)
        try:
            await _within(slots.acquire(), timeouts.get("pool"))
        except (TimeoutError, asyncio.TimeoutError) as exc:  # one class from 3.11 on
            raise httpx.PoolTimeout(
                f"no connection to {url.host}:{port} came free in time "
                f"({self.max_connections} were busy)"
            ) from exc
        try:
            idle = self._idle.setdefault(key, [])
            while idle and idle[-1].gone():  # the server closed it while it was idle
                idle.pop().close()
            connection = idle.pop() if idle else await self._connect(key, timeouts.get("connect"))
            try:
                status, headers, content, keep = await connection.exchange(
                    data, request, timeouts.get("read"), timeouts.get("write")
                )
            except BaseException:
                connection.close()
                raise
            if keep:
                idle.append(connection)
            else:
                connection.close()
        finally:
            slots.release()
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _connect(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            self._ssl = self._ssl or ssl.create_default_context()
            context = self._ssl
        try:
            reader, writer = await _within(
                asyncio.open_connection(host, port, ssl=context), timeout
            )
        except (TimeoutError, asyncio.TimeoutError) as exc:  # one class from 3.11 on
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            _watch_link(sock)
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        connections = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.closed()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(
        self,
        data: bytes,
        request: httpx.Request,
        timeout: float | None,
        write_timeout: float | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        try:
            self.writer.write(data)
            await _within(self.writer.drain(), write_timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:  # one class from 3.11 on
            if _link_died(exc):
                raise httpx.WriteError(_DEAD_LINK, request=request) from exc
            raise httpx.WriteTimeout("the server did not take the request in time") from exc
        except ConnectionError as exc:
            raise httpx.RemoteProtocolError(
                f"the connection ended before the request was sent ({type(exc).__name__})",
                request=request,
            ) from exc
        try:
            return await _within(self._response(request), timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:  # one class from 3.11 on
            if _link_died(exc):
                raise httpx.ReadError(_DEAD_LINK, request=request) from exc
            raise httpx.ReadTimeout("the server did not answer in time", request=request) from exc
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise httpx.RemoteProtocolError(
                f"the connection ended before the answer did ({type(exc).__name__})",
                request=request,
            ) from exc
        except ValueError as exc:  # a length or chunk size that is no number
            raise httpx.RemoteProtocolError(f"a malformed answer ({exc})", request=request) from exc

    async def _response(
        self, request: httpx.Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            raise httpx.RemoteProtocolError("an answer's head is too large", request=request)
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(
                f"not an HTTP answer: {lines[0]!r:.80}", request=request
            )
        status = int(parts[1])
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        keep = parts[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip(), value.strip()
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.isdigit():
                    raise ValueError(f"Content-Length {value!r:.40}")
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
                continue  # the body is handed on whole
            elif lowered == b"connection":
                keep = b"close" not in value.lower()
            headers.append((name, value))
        if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            content = b""
        elif chunked:
            content = await self._chunked()
        elif length is not None:
            content = await self.reader.readexactly(length)
        else:  # ends with the connection
            content, keep = await self.reader.read(), False
        return status, headers, content, keep

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def gone(self) -> bool:
        """The server closed it (its end of stream arrived), or it broke."""
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def closed(self) -> None:
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


_DEAD_LINK = (
    "the link to the server is dead (its end stopped answering keepalive probes, or took no "
    "data for 30 s)"
)


def _link_died(exc: BaseException) -> bool:
    """Whether a timeout is the kernel's (ETIMEDOUT: keepalive or TCP_USER_TIMEOUT found the
    link dead), not a wait of ours running out (asyncio's, which carries no errno)."""
    return isinstance(exc, OSError) and exc.errno is not None


def _watch_link(sock: socket.socket) -> None:
    """Have the kernel find a dead link under this connection (see the module's docstring)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, _USER_TIMEOUT_MS)
