"""Golden journal files: their format, the schema DDL of each version, and loading one into a
fresh database exactly as it was stored (replaying it is `golden_replay.py`).

A golden file holds the rows of every runplane table as the recording database stored them
(payloads as their stored JSON text, never decoded), so loading one writes what an earlier
version wrote, and a change in today's decoding that cannot read it fails the replay. The tables
are created from the DDL recorded for the file's schema version (`golden/schema/`), not from
today's metadata, so opening the loaded database also exercises the upgrade path from that
version.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
from runplane_durable.local.schema import metadata
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

__all__ = [
    "FORMAT",
    "GOLDEN_DIR",
    "SCHEMA_DIR",
    "TABLES",
    "clear_postgres",
    "create_empty",
    "current_ddl",
    "ddl_path",
    "dump_sqlite",
    "golden_files",
    "golden_path",
    "load",
    "load_golden",
    "normalized",
    "recorded_ddl",
    "recorded_versions",
    "table_rows",
]

FORMAT = 1  # of the golden file itself (its keys), not of the schema it holds
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "durable" / "engine" / "golden"
SCHEMA_DIR = GOLDEN_DIR / "schema"
# The tables a golden file holds, in the order the loader fills them.
# A table new in a later version is absent from earlier versions' files (and databases).
TABLES = ("runplane_runs", "runplane_journal", "runplane_events", "runplane_tasks")
_ORDER = {
    "runplane_runs": "id",
    "runplane_journal": "run_id, seq",
    "runplane_events": "run_id, seq",
    "runplane_tasks": "id",
}
_DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


# -- the schema as of each version ----------------------------------------------------------------


def current_ddl(dialect: str) -> str:
    """Today's schema (local/schema.py) as DDL for `dialect`: what a new database gets."""
    compiled = []
    for table in metadata.sorted_tables:
        compiled.append(str(CreateTable(table).compile(dialect=_DIALECTS[dialect])).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            compiled.append(str(CreateIndex(index).compile(dialect=_DIALECTS[dialect])).strip())
    return ";\n\n".join(compiled) + ";\n"


def ddl_path(version: int, dialect: str) -> Path:
    return SCHEMA_DIR / f"v{version}.{dialect}.sql"


def recorded_ddl(version: int, dialect: str) -> str:
    path = ddl_path(version, dialect)
    if not path.is_file():
        raise AssertionError(
            f"no recorded DDL for schema version {version} ({path}); record it with "
            "`python tests/support/golden_record.py` (docs/development.md, Golden journals)"
        )
    return path.read_text(encoding="utf-8")


def recorded_versions() -> list[int]:
    found = {
        int(m.group(1)) for p in SCHEMA_DIR.glob("v*.sql") if (m := re.match(r"v(\d+)\.", p.name))
    }
    return sorted(found)


def normalized(ddl: str) -> str:
    return re.sub(r"\s+", " ", ddl).strip()


def _statements(ddl: str) -> list[str]:
    return [s.strip() for s in ddl.split(";") if s.strip()]


# -- files ----------------------------------------------------------------------------------------


def golden_files() -> list[Path]:
    return sorted(GOLDEN_DIR.glob("*.v*.json"))


def golden_path(program: str, version: int) -> Path:
    """The file of `program` recorded with schema `version` (one per program and version)."""
    return GOLDEN_DIR / f"{program}.v{version}.json"


def load_golden(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise AssertionError(
            f"{path.name}: golden file format {data.get('format')!r}, not {FORMAT}"
        )
    return data


def dump_sqlite(path: Path) -> dict[str, Any]:
    """Every row of the runplane tables of a SQLite file, as stored (columns in stored order)."""
    conn = sqlite3.connect(path)
    try:
        tables: dict[str, Any] = {}
        for table in TABLES:
            cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {_ORDER[table]}")
            tables[table] = {
                "columns": [d[0] for d in cursor.description],
                "rows": [list(row) for row in cursor.fetchall()],
            }
        return tables
    finally:
        conn.close()


def table_rows(golden: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """One table of a golden file, a dict per row."""
    held = golden["tables"][table]
    return [dict(zip(held["columns"], row, strict=True)) for row in held["rows"]]


# -- loading --------------------------------------------------------------------------------------


def _inserts(golden: dict[str, Any], marker: str) -> list[tuple[str, list[list[Any]]]]:
    out = []
    for table in TABLES:
        held = golden["tables"].get(table)
        if held is None or not held["rows"]:
            continue
        columns = ", ".join(f'"{c}"' for c in held["columns"])
        marks = ", ".join(marker.format(n=i + 1) for i in range(len(held["columns"])))
        out.append((f"INSERT INTO {table} ({columns}) VALUES ({marks})", held["rows"]))
    return out


def load(url: str, golden: dict[str, Any]) -> None:
    """Write a golden file into the empty database at `url`: the tables from the DDL of the
    file's schema version, its version row, and its rows exactly as recorded."""
    version = golden["schema_version"]
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            conn.executescript(recorded_ddl(version, "sqlite"))
            conn.execute("INSERT INTO runplane_schema (id, version) VALUES (1, ?)", (version,))
            for statement, rows in _inserts(golden, "?"):
                conn.executemany(statement, rows)
            conn.commit()
        finally:
            conn.close()
        return

    async def write() -> None:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                for statement in _statements(recorded_ddl(version, "postgresql")):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO runplane_schema (id, version) VALUES (1, $1)", version
                )
                for statement, rows in _inserts(golden, "${n}"):
                    await conn.executemany(statement, rows)
        finally:
            await conn.close()

    asyncio.run(write())


def clear_postgres(url: str) -> None:
    """Drop every runplane table (of any version) of the PostgreSQL database at `url`: it is
    then as empty, for runplane, as a new one."""

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            names = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename LIKE 'runplane%'"
            )
            for row in names:
                await conn.execute(f'DROP TABLE "{row["tablename"]}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def create_empty(url: str, version: int) -> None:
    """A database of schema `version` holding no runs, from that version's recorded DDL."""
    load(
        url,
        {"schema_version": version, "tables": {t: {"columns": ["x"], "rows": []} for t in TABLES}},
    )
