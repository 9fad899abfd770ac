"""A program that runs `jobs.agent` with `Runner.run` (the test kills it): `python program.py
RUN_ID KEY`; its database is RUNPLANE_DATABASE_URL. Prints the final output as its last line.
JOBS_LEASE=SECONDS runs it on a `DurableBackend` with that lease instead."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from jobs import agent
from runplane_durable import DurableBackend, Runner, run_id


def main() -> None:
    rid, key = sys.argv[1], sys.argv[2]
    lease = os.environ.get("JOBS_LEASE")
    with run_id(rid):
        if lease:
            backend = DurableBackend(lease_seconds=float(lease))
            result = asyncio.run(backend.run(agent, f"job:{key}"))
        else:
            result = asyncio.run(Runner.run(agent, f"job:{key}"))
    print(json.dumps({"final_output": result.final_output}), flush=True)


if __name__ == "__main__":
    main()
