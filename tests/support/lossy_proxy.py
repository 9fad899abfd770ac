"""A TCP proxy in front of a real server that loses answers: the request reaches the server and
commits, its answer never reaches the client (the connection is cut instead).

It looks at the bytes going to the server for a request line starting with `drop` (such as
`POST /api/v1/sessions/append`) and cuts the connection when that request's answer comes back,
`times` times. It also keeps every request head it saw, to check what a client sent.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["LossyProxy"]


class LossyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop: bytes | None = None
        self.times = 0
        self.dropped = 0
        self.heads: list[bytes] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lose_answers(self, request_line: str, times: int = 1) -> None:
        self.drop, self.times = request_line.encode(), times

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        losing = asyncio.Event()

        async def to_server() -> None:
            while data := await reader.read(65536):
                if data[:4] in (b"POST", b"GET ", b"PUT ", b"DELE"):
                    self.heads.append(data.split(b"\r\n\r\n", 1)[0])
                    if self.drop is not None and self.times > 0 and data.startswith(self.drop):
                        self.times -= 1
                        losing.set()
                up_writer.write(data)
                await up_writer.drain()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                if losing.is_set():  # the server answered: the client never hears it
                    self.dropped += 1
                    return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
