"""What server mode costs: the durable backend through a `runplane server`, against the SDK's own
runner and the embedded durable backend, one run at a time.

The same scripted agents as `durable.py` (one tool call per turn) run on the SDK's `AgentRunner`
("sdk"), on the durable backend with a SQLite file in this process ("embedded"), and on the
durable backend through a `runplane server` subprocess on loopback, on SQLite ("server") and,
unless --no-pg, on PostgreSQL ("server-pg"), interleaved per repeat. Prints, from `durable.py`'s
tables: the wall and CPU ms added per step without the fixed costs (turns 11 to 100), and the
cost of opening a run (a 1-turn run minus the SDK's); then the server process's own CPU per step
and the target of issue #11 (server mode <= 3 ms added per step at 1 concurrent run).

    python bench/server.py                 # about 2 minutes on a busy 2-core VM
    python bench/server.py --repeats 9 --no-pg
    python bench/server.py --httpx         # http1.py against httpx's own transport, interleaved
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import durable as base  # bench/durable.py: the agents, the runners and the tables
import httpx
from runplane_durable import RemoteEngine
from runplane_durable.engine import open_engine

TARGET_MS = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(database: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPLANE_SERVER_URL",)}
    command = [sys.executable, "-m", "runplane", "server", "--port", str(port)]
    with open(log, "ab") as out:
        proc = subprocess.Popen([*command, "--database", database], stdout=out, stderr=out, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"runplane server did not start: {log.read_text()}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_bench(args: argparse.Namespace, tmp: Path) -> None:
    servers: dict[str, subprocess.Popen[bytes]] = {}
    targets = [base.Target("sdk"), base.Target("embedded", f"sqlite:///{tmp / 'embedded.db'}")]
    proc, url = start_server(f"sqlite:///{tmp / 'served.db'}", tmp / "server.log")
    servers["server"] = proc
    targets.append(base.Target("server", url))
    if args.httpx:  # the same server, through httpx's own transport (httpcore)
        targets.append(base.Target("srv-httpx", url, durability="httpx"))
    pg = None
    if not args.no_pg:
        pg = base.pg_database(args.pg)
        pg_url = await pg.__aenter__()
        proc, url = start_server(pg_url, tmp / "server-pg.log")
        servers["server-pg"] = proc
        targets.append(base.Target("server-pg", url))
        if args.httpx:
            targets.append(base.Target("pg-httpx", url, durability="httpx"))

    # The one factory chooses the engine: a database path or URL, or a server's http:// URL.
    # (`durability` marks the targets on httpx's own transport instead of http1's.)
    def make_engine(url: str, durability: str | None) -> Any:
        if durability == "httpx":
            return RemoteEngine(url, transport=httpx.AsyncHTTPTransport)
        return open_engine(url)

    base.make_engine = make_engine
    try:
        base.prepare(targets)
        await base.interleaved(targets, 3, 2)  # warm-up: imports, connections, caches
        low, high = 10, 100
        print(f"{len(targets)} runners, {args.repeats} repeats, interleaved, 1 run at a time")
        low_s = await base.interleaved(targets, low, args.repeats)
        before = {label: cpu_seconds(p.pid) for label, p in servers.items()}
        high_s = await base.interleaved(targets, high, args.repeats)
        server_cpu = {
            label: (cpu_seconds(p.pid) - before[label]) / (high * args.repeats) * 1000
            for label, p in servers.items()
        }
        rows = base.marginal_rows(low_s, high_s, low, high)
        base.print_marginal_table(rows, low, high)
        one = await base.interleaved(targets, 1, args.repeats)
        print("\nopening a run: a 1-turn run minus the SDK's (ms, median / best)")
        sdk_one = one["sdk"]
        for target in targets[1:]:
            s = one[target.label]
            added = (base.med(s.wall) - base.med(sdk_one.wall)) * 1000
            best_added = (base.best(s.wall) - base.best(sdk_one.wall)) * 1000
            print(f"  {target.label:>10}: {added:+.2f} / {best_added:+.2f}")
        print("\nthe server process's own CPU per step, at 100 turns (ms):")
        for label, ms in server_cpu.items():
            print(f"  {label:>10}: {ms:.2f}")
        print(f"\ntarget (issue #11): server mode <= {TARGET_MS:g} ms added per step, 1 run")
        for row in rows:
            if row.label.startswith(("server", "srv", "pg")):
                print(
                    f"  {row.label:>10}: {row.added:+.2f} ms (best {row.best_added:+.2f}, paired "
                    f"{row.pair_added:+.2f}) {base.verdict(row.added, TARGET_MS)}"
                )
    finally:
        await base.dispose(targets)
        for target in targets:
            if target.engine is not None:
                await target.engine.dispose()
        for proc in servers.values():
            proc.terminate()
            proc.wait(timeout=15)
        if pg is not None:
            await pg.__aexit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pg", default=None, help=f"PostgreSQL URL (else {base.ENV_PG})")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument(
        "--httpx",
        action="store_true",
        help="also measure each server through httpx's own transport (httpcore), not http1's",
    )
    args: Any = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runplane-bench-server-") as tmp:
        asyncio.run(run_bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
