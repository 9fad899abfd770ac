"""Starts runs for a worker by the agent's reference, without running anything: `python
starter.py KEY...`; prints each run id on a line. Its database is RUNPLANE_DATABASE_URL."""

from __future__ import annotations

import asyncio
import sys

from runplane_durable import Runner


async def main(keys: list[str]) -> None:
    for key in keys:
        handle = await Runner.start("jobs:agent", f"job:{key}", run_id=f"started-{key}")
        print(handle.run_id, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
