"""How long an event takes to reach a live event stream: an embedded program writes a run's
events one at a time, and an SSE client of a `runplane server` on the same database (SQLite, and
unless --no-pg PostgreSQL) reads them; each event's delay is its arrival time minus the time it
was committed (one host, one clock). On SQLite the stream polls every 0.2 s; on PostgreSQL it is
woken by NOTIFY (this version) or polls (an older one).

    python bench/sse_latency.py              # about 30 s
    python bench/sse_latency.py --events 50 --no-pg
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import durable as base  # bench/durable.py: pg_database
import httpx
from runplane_durable import LocalEngine
from runplane_durable.records import NewEvent, RunSpec
from server import start_server  # bench/server.py


async def measure(database: str, url: str, events: int) -> list[float]:
    """The delays (seconds) of `events` events, each written after the previous arrived."""
    engine = LocalEngine(database)
    run_id = f"latency-{uuid.uuid4().hex[:8]}"
    session = await engine.open_run(RunSpec(run_id, "bench", {}, "fp", {}), lease_seconds=60)
    delays: list[float] = []
    stream = f"{url}/api/v1/runs/{run_id}/events/stream"
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", stream) as response:
        lines = response.aiter_lines()
        written = 0.0
        async for line in lines:
            if not line.startswith("data: "):
                continue
            seq = json.loads(line[6:])["seq"]
            if seq > 1:
                delays.append(time.time() - written)
            if len(delays) == events:
                break
            # A pause at random, so a poll's phase does not line up with the writes.
            await asyncio.sleep(random.uniform(0.05, 0.3))
            await session.append(events=[NewEvent("tick", {"n": seq})])
            written = time.time()
    await session.finish("completed", final_output={"json": None})
    await session.close()
    await engine.dispose()
    return delays


def summary(label: str, delays: list[float]) -> str:
    ms = sorted(d * 1000 for d in delays)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"  {label:<12} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   "
        f"max {ms[-1]:7.1f} ms   ({len(ms)} events)"
    )


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sse-latency-"))
    print(f"event delay to a live stream, {args.events} events each, 1 stream")
    sqlite = f"sqlite:///{tmp / 'runs.db'}"
    proc, url = start_server(sqlite, tmp / "server.log")
    try:
        print(summary("SQLite", await measure(sqlite, url, args.events)))
    finally:
        proc.terminate()
        proc.wait(15)
    if args.no_pg:
        return
    async with base.pg_database(args.pg or os.environ.get(base.ENV_PG)) as pg_url:
        proc, url = start_server(pg_url, tmp / "server-pg.log")
        try:
            print(summary("PostgreSQL", await measure(pg_url, url, args.events)))
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--pg", default=None, help=f"PostgreSQL URL (else {base.ENV_PG})")
    parser.add_argument("--no-pg", action="store_true")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
