"""Record the golden journals: each program of `golden_programs`, run live on a fresh SQLite file.

    python tests/support/golden_record.py            # programs with no file of this schema yet
    python tests/support/golden_record.py NAME ...   # only these
    python tests/support/golden_record.py --force NAME   # replace an existing file (say why)

Run by hand, never by the tests. Each file (`tests/durable/engine/golden/NAME.vN.json`, N the schema
version that wrote it; files of earlier versions are kept and replayed too) holds the rows of
every runplane table as stored, the schema version and the versions that recorded them, and what
the run returned; before writing it, the file is loaded into another database and replayed with
this same code, and a run that does not replay is not recorded. The DDL of the current schema
version is written to `golden/schema/` once; if today's schema differs from what is recorded for
its version, the schema changed without a new SCHEMA_VERSION, and nothing is written.
See docs/development.md, "Golden journals".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # never reach the network
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `support` as the tests see it

from agents.testing import ScriptedModel
from runplane_durable.local.schema import SCHEMA_VERSION

from support.golden_files import (
    FORMAT,
    current_ddl,
    ddl_path,
    dump_sqlite,
    golden_path,
    load,
    normalized,
    table_rows,
)
from support.golden_programs import CRASH_EXIT, PROGRAMS, Ledger, Program, Stop
from support.golden_replay import differences, replay_finished, resume_unfinished, run_agent

MAX_BYTES = 100_000


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


async def _live(program: Program, url: str) -> dict[str, Any]:
    """The program run for real (scripted models): its summary. A `stop_at` program's first
    attempt stops in that tool; the second resumes it with the steps left."""
    models = {name: ScriptedModel(steps) for name, steps in program.script().items()}
    ledger = Ledger(stop_at=program.stop_at, crash_at=program.crash_at)
    agent = next(iter(program.agents(models.__getitem__, ledger).values()))
    if program.stop_at is not None:
        try:
            await run_agent(url, agent, program.prompt, program.mode, program.run_id)
        except Stop:
            pass
        else:
            raise SystemExit(f"{program.name}: tool {program.stop_at} never stopped the run")
    result = await run_agent(url, agent, program.prompt, program.mode, program.run_id)
    left = {name: m.remaining_steps for name, m in models.items() if m.remaining_steps}
    if left:
        raise SystemExit(f"{program.name}: scripted steps left unused: {left}")
    return result


def _crash(program: Program, url: str) -> None:
    """Run the program in a child process that dies in its `crash_at` tool."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", program.name, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != CRASH_EXIT:
        raise SystemExit(
            f"{program.name}: the recording process exited {proc.returncode}, not "
            f"{CRASH_EXIT} in tool {program.crash_at}:\n{proc.stdout}\n{proc.stderr}"
        )


def _versions() -> dict[str, Any]:
    return {
        "runplane_durable": importlib.metadata.version("runplane-durable"),
        "openai_agents": importlib.metadata.version("openai-agents"),
        "python": ".".join(map(str, sys.version_info[:3])),
        "database": "sqlite",
        "date": datetime.date.today().isoformat(),
    }


def record(program: Program, workdir: Path) -> dict[str, Any]:
    db = workdir / f"{program.name}.db"
    url = _url(db)
    live: dict[str, Any] | None = None
    if program.crash_at is not None:
        _crash(program, url)
    else:
        live = asyncio.run(_live(program, url))
    golden: dict[str, Any] = {
        "format": FORMAT,
        "program": program.name,
        "description": program.description,
        "schema_version": SCHEMA_VERSION,
        "recorded_with": _versions(),
        "tables": dump_sqlite(db),
    }
    # What today's code makes of the file, checked before it is kept.
    check = _url(workdir / f"{program.name}-replay.db")
    load(check, golden)
    replayed = replay_finished(check, program, golden)
    for rid, r in replayed.items():
        if r.model_calls or r.tool_calls:
            raise SystemExit(
                f"{program.name}: replaying {rid} called {r.model_calls} model(s) "
                f"and tools {r.tool_calls}"
            )
    golden["expected"] = {rid: r.summary for rid, r in replayed.items()}
    if live is not None:
        differ = differences(
            live, golden["expected"].get(program.run_id), ignore=program.known_differences
        )
        if differ:
            raise SystemExit(
                f"{program.name}: the replay did not return what the live run did:\n  "
                + "\n  ".join(differ)
            )
        golden["expected"][program.run_id] = live  # what a replay must give, bugs or not
    if program.crash_at is not None:
        steps_done = sum(
            1
            for e in table_rows(golden, "runplane_journal")
            if e["run_id"] == program.run_id and e["kind"] == "model"
        )
        resumed = resume_unfinished(
            check, program, golden, allowed=frozenset({program.crash_at}), steps_done=steps_done
        )
        golden["resume"] = {
            "run_id": program.run_id,
            "model_steps_done": steps_done,
            "model_calls": resumed.model_calls,
            "tool_calls": resumed.tool_calls,
            "summary": resumed.summary,
        }
    return golden


def _schema() -> None:
    """Write the current version's DDL once; refuse a schema changed under the same version."""
    for dialect in ("sqlite", "postgresql"):
        path = ddl_path(SCHEMA_VERSION, dialect)
        ddl = current_ddl(dialect)
        if path.is_file():
            if normalized(path.read_text(encoding="utf-8")) != normalized(ddl):
                raise SystemExit(
                    f"local/schema.py differs from the schema recorded for version "
                    f"{SCHEMA_VERSION} ({path}): a schema change needs a new SCHEMA_VERSION and "
                    "a migration (docs/development.md, Golden journals). Nothing was written."
                )
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ddl, encoding="utf-8")
        print(f"wrote {path}")


def _child(name: str, url: str) -> None:
    asyncio.run(_live(PROGRAMS[name], url))
    raise SystemExit(f"{name}: the run finished, but it should have died in its crash_at tool")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"programs to record: {', '.join(PROGRAMS)}")
    parser.add_argument("--force", action="store_true", help="replace existing golden files")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    unknown = [n for n in args.names if n not in PROGRAMS]
    if unknown:
        parser.error(f"no program {', '.join(unknown)}; the programs: {', '.join(PROGRAMS)}")
    _schema()
    names = args.names or list(PROGRAMS)
    with tempfile.TemporaryDirectory(prefix="golden-record-") as tmp:
        for name in names:
            path = golden_path(name, SCHEMA_VERSION)
            if path.exists() and not args.force:
                print(f"kept {path.name} (exists; --force replaces it)")
                continue
            text = json.dumps(record(PROGRAMS[name], Path(tmp)), indent=1, ensure_ascii=False)
            if len(text.encode()) > MAX_BYTES:
                raise SystemExit(f"{name}: {len(text.encode())} bytes, over {MAX_BYTES}")
            path.write_text(text + "\n", encoding="utf-8")
            print(f"wrote {path.name} ({len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
