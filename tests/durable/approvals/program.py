"""The program of the cross-process approval tests: `python program.py RUN_ID start` runs the
payer until it stops for approval and exits; `python program.py RUN_ID resume` continues the run
with `Runner.resume` (the decisions stored from elsewhere applied). Prints one JSON line: the
final output and the calls waiting. Its runs go where RUNPLANE_DATABASE_URL or
RUNPLANE_SERVER_URL say."""

from __future__ import annotations

import asyncio
import json
import sys

from payments import agent
from runplane_durable import Runner, run_id


async def main(rid: str, mode: str) -> None:
    if mode == "start":
        with run_id(rid):
            result = await Runner.run(agent, "pay five")
    else:
        result = await Runner.resume(rid, agent)
    waiting = [item.call_id for item in result.interruptions]
    print(json.dumps({"final_output": result.final_output, "waiting": waiting}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
