"""Durable-backend test helpers: a SQLite file per test, a PostgreSQL database per session."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("RUNPLANE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def _pg_ready() -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL), timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def ensure_postgres() -> None:
    """Start the machine's PostgreSQL cluster if it is down; fail loudly if it cannot be had."""
    if _pg_ready():
        return
    ctl = shutil.which("pg_ctlcluster")
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if ctl and versions:
        subprocess.run(
            [ctl, "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )
    if not _pg_ready():
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} and could not be started; install "
            "and start it (Debian: apt-get install postgresql) or point RUNPLANE_TEST_PG at one"
        )


def fresh_pg_database() -> Iterator[str]:
    """A new empty database for one test session; dropped afterwards."""
    import asyncpg

    ensure_postgres()
    name = f"runplane_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
