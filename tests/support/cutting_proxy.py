"""A TCP proxy in front of PostgreSQL that loses one answer after the server committed it.

Once the client sends bytes holding `marker` (a value of a statement's parameters) for the
`occurrence`-th time, the proxy
passes them on, waits for the server's answer, and cuts both connections instead of passing it
back: the statement committed (PostgreSQL answers an extended-protocol statement after its
Sync, that is after its commit), and the client only knows that the link died mid-statement.
Runs on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["CuttingProxy"]


class CuttingProxy:
    def __init__(self, upstream_port: int, marker: bytes, *, occurrence: int = 1) -> None:
        self.upstream_port = upstream_port
        self.marker = marker
        self.occurrence = occurrence
        self.seen = 0
        self.cut = 0  # answers lost so far (at most one)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        armed = asyncio.Event()

        async def to_server() -> None:
            while chunk := await reader.read(65536):
                if self.cut == 0 and self.marker in chunk:
                    self.seen += 1
                    if self.seen == self.occurrence:
                        armed.set()
                up_writer.write(chunk)
                await up_writer.drain()

        async def to_client() -> None:
            while chunk := await up_reader.read(65536):
                if armed.is_set() and self.cut == 0:
                    self.cut += 1
                    return  # the answer is dropped: both links are cut below
                writer.write(chunk)
                await writer.drain()

        tasks = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.transport.abort()
