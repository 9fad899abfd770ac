"""Run `nested_crash_program.py` as real processes, like `durable_programs.CrashProgram`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from support.durable_programs import CrashProgram, final_output

__all__ = ["NestedProgram"]

SOURCE = Path(__file__).with_name("nested_crash_program.py")


class NestedProgram(CrashProgram):
    """The nested program in `workdir`: a boss run whose tool is a worker run."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        shutil.copyfile(SOURCE, self.script)

    def start_run(self, run_id: str, *, block: str) -> subprocess.Popen[str]:
        return self.start("run_sync", run_id, block=block)

    def run_to_end(self, run_id: str) -> Any:
        """Run the program to its end; its final output."""
        return final_output(self.run("run_sync", run_id))

    def agent_model_calls(self) -> list[str]:
        """`AGENT ORDINAL` of every real model call, in order, over every process so far."""
        return [" ".join(line.split()[:2]) for line in self.lines("model.log")]
