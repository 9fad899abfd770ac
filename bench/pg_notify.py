"""What NOTIFY costs a step on PostgreSQL: the hot path's one-statement step (`pg_steps._APPEND`)
as it is and with its NOTIFY taken out, run back to back by concurrent connections, each on its
own run, interleaved per round; as it is, both with nobody watching the runs (it notifies
nobody) and with a listener watching every run (as a server's does for its streams: each step
notifies). Prints statements per second and the median ms per statement.

NOTIFY is queued at commit under a lock every notifying transaction of the cluster takes in
turn, held through its WAL flush, so its cost shows under concurrency, not in one connection's
latency.

    python bench/pg_notify.py                       # about a minute
    python bench/pg_notify.py --seconds 3 --rounds 5 --concurrency 1,8,32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
import uuid
from typing import Any

import asyncpg
import durable as base  # bench/durable.py: pg_database
from runplane_durable import LocalEngine
from runplane_durable.local import pg_steps, sql
from runplane_durable.records import RunSpec

WITH = pg_steps._APPEND
WITHOUT = re.sub(r"\), notified AS \(.*?\n\)\n", ")\n", WITH, flags=re.S).replace(
    ", (SELECT count(*) FROM notified)", ""
)
assert "pg_notify" in WITH
assert "pg_notify" not in WITHOUT


async def runs(url: str, n: int) -> list[tuple[str, str]]:
    """`n` runs, each held by an owner of its own (so each connection steps its own run)."""
    engine = LocalEngine(url)
    held = []
    for _ in range(n):
        spec = RunSpec(f"notify-bench-{uuid.uuid4().hex[:8]}", "bench", {}, "fp", {})
        session = await engine.open_run(spec, lease_seconds=3600)
        held.append((spec.run_id, session.record.owner or ""))
    await engine.dispose()
    return held


async def steps(conn: Any, statement: str, run: tuple[str, str], until: float) -> list[float]:
    run_id, owner = run
    seq = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM runplane_events")) + 10**6
    took = []
    while time.monotonic() < until:
        seq += 1
        now = time.time()
        started = time.perf_counter()
        await conn.fetchrow(
            statement,
            run_id,
            owner,
            now,
            now + 3600,
            0,
            0,
            0,
            0,
            0,
            0,
            seq,
            None,
            None,
            None,
            None,
            seq,
            ["tick"],
            ['{"n": 1}'],
        )
        took.append(time.perf_counter() - started)
    return took


async def round_of(
    conns: list[Any], held: list[tuple[str, str]], statement: str, seconds: float
) -> tuple[float, float]:
    until = time.monotonic() + seconds
    pairs = zip(conns, held, strict=True)
    took = await asyncio.gather(*(steps(c, statement, r, until) for c, r in pairs))
    every = [t for ts in took for t in ts]
    return len(every) / seconds, statistics.median(every) * 1000


async def main(args: argparse.Namespace) -> None:
    levels = [int(c) for c in args.concurrency.split(",")]
    async with base.pg_database(args.pg or os.environ.get(base.ENV_PG)) as url:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        held = await runs(url, max(levels))
        conns = [await asyncpg.connect(dsn) for _ in range(max(levels))]
        print(f"one step statement, {args.rounds} rounds of {args.seconds:g} s, interleaved")
        listener = await asyncpg.connect(dsn)
        await listener.add_listener(sql.EVENTS_CHANNEL, lambda *_: None)
        lock = f"SELECT pg_advisory_lock_shared({sql.WATCH_LOCK_CLASS}, hashtext($1))"
        unlock = f"SELECT pg_advisory_unlock_shared({sql.WATCH_LOCK_CLASS}, hashtext($1))"
        variants = ("no NOTIFY", "unwatched", "watched")
        print(f"{'':>10} {'step':>12} {'steps/s':>9} {'median ms':>10}")
        for level in levels:
            found: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for variant in variants:
                    watched = variant == "watched"
                    for run_id, _owner in held[:level] if watched else ():
                        await listener.execute(lock, run_id)
                    statement = WITHOUT if variant == "no NOTIFY" else WITH
                    found[variant].append(
                        await round_of(conns[:level], held[:level], statement, args.seconds)
                    )
                    for run_id, _owner in held[:level] if watched else ():
                        await listener.execute(unlock, run_id)
            for variant in variants:
                rate = statistics.median(r for r, _ in found[variant])
                ms = statistics.median(m for _, m in found[variant])
                print(f"{level:>5} conn {variant:>12} {rate:>9.0f} {ms:>10.2f}")
        await listener.close()
        for c in conns:
            await c.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--pg", default=None, help=f"PostgreSQL URL (else {base.ENV_PG})")
    asyncio.run(main(parser.parse_args()))
