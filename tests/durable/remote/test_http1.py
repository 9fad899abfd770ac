"""The remote engine's HTTP/1.1 transport against real sockets: keep-alive, chunked and
closing answers, idle connections the server closed, and each failure as the httpx exception the
engine's retries know."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from runplane_durable.http1 import Http1Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serving(handler: Handler) -> tuple[asyncio.Server, str, list[int]]:
    connections: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections


async def _requests(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head and body (Content-Length), or None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def _client(
    url: str, *, max_connections: int | None = None, **timeouts: float
) -> httpx.AsyncClient:
    timeout = httpx.Timeout(5.0, **timeouts)
    transport = (
        Http1Transport()
        if max_connections is None
        else Http1Transport(max_connections=max_connections)
    )
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout)


def test_keep_alive_chunked_and_closing_answers() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await _requests(reader)) is not None:
            seen.append(request)
            if b"/chunked" in request:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
            elif b"/close" in request:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"
                )
                await writer.drain()
                return
            else:
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"ok": true}')
            await writer.drain()

    async def go() -> None:
        server, url, connections = await _serving(handler)
        async with _client(url) as client:
            posted = await client.post("/a?x=1", json={"n": 1}, headers={"X-Token": "t"})
            assert (posted.status_code, posted.json()) == (200, {"ok": True})
            assert (await client.get("/chunked")).text == "hello world"
            assert len(connections) == 1  # both on one kept-alive connection
            assert (await client.get("/close")).text == "bye"
            assert (await client.get("/again")).status_code == 200
            assert len(connections) == 2  # the closed one was not reused
        server.close()
        await server.wait_closed()
        first = seen[0]
        assert first.startswith(b"POST /a?x=1 HTTP/1.1\r\n")
        assert b"\r\nX-Token: t\r\n" in first or b"\r\nx-token: t\r\n" in first
        assert first.endswith(b'\r\n\r\n{"n":1}') or first.endswith(b'\r\n\r\n{"n": 1}')

    asyncio.run(go())


def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _requests(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()  # then closes: a keep-alive timeout

    async def go() -> None:
        server, url, connections = await _serving(handler)
        async with _client(url) as client:
            assert (await client.get("/one")).text == "ok"
            await asyncio.sleep(0.1)  # the server's close arrives while the connection is idle
            assert (await client.get("/two")).text == "ok"
        assert len(connections) == 2
        server.close()
        await server.wait_closed()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", httpx.RemoteProtocolError),
        (b"", httpx.RemoteProtocolError),  # closed before answering
        (b"SSH-2.0-OpenSSH\r\n\r\n", httpx.RemoteProtocolError),  # not HTTP
        (None, httpx.ReadTimeout),  # never answers
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", httpx.RemoteProtocolError),
        (  # a chunk size that is no hex number
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
            httpx.RemoteProtocolError,
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 70_000 + b"\r\n\r\n", httpx.RemoteProtocolError),
    ],
)
def test_a_broken_answer_is_the_httpx_error_the_engine_retries(
    answer: bytes | None, error: type[Exception]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _requests(reader)
        if answer is None:
            await asyncio.sleep(2)
            return
        writer.write(answer)
        await writer.drain()

    async def go() -> None:
        server, url, _ = await _serving(handler)
        async with _client(url, read=0.3) as client:
            with pytest.raises(error):
                await client.get("/x")
        server.close()
        await server.wait_closed()

    asyncio.run(go())


def test_nobody_listening_is_a_connect_error() -> None:
    async def go() -> None:
        server, url, _ = await _serving(_requests_only)
        server.close()
        await server.wait_closed()
        async with _client(url) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("/x")

    asyncio.run(go())


async def _requests_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _requests(reader)


def test_a_server_that_takes_no_request_is_a_write_timeout() -> None:
    """A body the server does not read (it stalled) fills the socket's buffers: the write is
    bounded by the client's write timeout, as httpx's own transport bounds it."""
    stalled = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stalled.wait()  # reads nothing

    async def go() -> None:
        server, url, _ = await _serving(handler)
        async with _client(url, write=0.3) as client:
            with pytest.raises(httpx.WriteTimeout):
                await client.post("/big", content=b"x" * 64_000_000)
        stalled.set()
        server.close()
        await server.wait_closed()

    asyncio.run(go())


def test_concurrent_requests_each_get_their_own_answer_and_connections_are_reused() -> None:
    """Requests at once on one transport never share a connection mid-exchange; the idle ones
    are reused afterwards."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await _requests(reader)) is not None:
            path = request.split(b" ")[1]
            await asyncio.sleep(0.01)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
            await writer.drain()

    async def go() -> None:
        server, url, connections = await _serving(handler)
        async with _client(url) as client:
            for _ in range(3):
                answers = await asyncio.gather(*(client.get(f"/n{i}") for i in range(8)))
                assert [a.text for a in answers] == [f"/n{i}" for i in range(8)]
        assert len(connections) <= 8  # each round on the connections the first made
        server.close()
        await server.wait_closed()

    asyncio.run(go())


def test_many_requests_at_once_share_a_bounded_number_of_connections() -> None:
    """200 requests at once (a loop busy with many runs) open at most `max_connections`
    connections: the rest wait for one to come free, and every one is answered. Unbounded,
    each opened its own, and on a saturated loop their connects timed out."""
    open_now = [0]
    most = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        try:
            while (request := await _requests(reader)) is not None:
                path = request.split(b" ")[1]
                await asyncio.sleep(0.005)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
                await writer.drain()
        finally:
            open_now[0] -= 1

    async def go() -> None:
        server, url, connections = await _serving(handler)
        async with _client(url, max_connections=4) as client:
            answers = await asyncio.gather(*(client.get(f"/n{i}") for i in range(200)))
            assert [a.text for a in answers] == [f"/n{i}" for i in range(200)]
        assert most[0] <= 4
        assert len(connections) <= 4
        server.close()
        await server.wait_closed()

    asyncio.run(go())


def test_waiting_for_a_connection_past_the_pool_timeout_is_a_pool_timeout() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await _requests(reader) is not None:
            await release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def go() -> None:
        server, url, _ = await _serving(handler)
        async with _client(url, max_connections=1, pool=0.2) as client:
            first = asyncio.ensure_future(client.get("/slow"))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout, match="1 were busy"):
                await client.get("/second")
            release.set()
            assert (await first).text == "ok"
            assert (await client.get("/third")).text == "ok"  # the slot came back
        server.close()
        await server.wait_closed()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_a_connection_limit_must_be_a_positive_int(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_connections"):
        Http1Transport(max_connections=value)  # type: ignore[arg-type]


def test_a_cancel_that_arrives_as_the_answer_does_is_not_swallowed() -> None:
    """`asyncio.wait_for` on 3.11 returns the result and drops such a cancel (CPython issue
    86296): a run cancelled at its write would go on. The SDK's own tests met it (a tripwire
    cancelling a run while it was being opened)."""
    from runplane_durable.http1 import _within

    async def go() -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[int] = loop.create_future()
        waiting = asyncio.ensure_future(_within(answer, 5.0))
        await asyncio.sleep(0)  # it waits on the answer
        answer.set_result(1)
        waiting.cancel()  # in the same turn of the loop
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(go())
