"""The durable backend's `runplane.DurableCapabilities`: its ids, its event log and its errors.

Nothing new is kept: `run_id` is the program's own `with run_id(...)`, the history is read from
the run's event log (a `model_call` event per recorded model response, naming the tool calls it
asked for, and a `tool_call` event per recorded tool output), and a changed program is refused
with `ReplayDivergenceError` (what the model is asked changed) or `RunInputMismatchError` (the
agent or the input changed). Through the backend's engine, so it reads wherever the runs are.
"""

from __future__ import annotations

import contextlib

from runplane import RunHistory, RunStep

from ..engine import Engine
from ..errors import ReplayDivergenceError, RunInputMismatchError
from ..events import ModelCalled, ToolCalled, parse
from ..records import RunStatus
from .identity import run_id as named_run

__all__ = ["Durability"]

_UNFINISHED: frozenset[RunStatus] = frozenset({"queued", "running"})


class Durability:
    """`DurableBackend.durability()`: the backend's runs as the durability profile reads them."""

    divergence_errors: tuple[type[Exception], ...] = (
        ReplayDivergenceError,
        RunInputMismatchError,
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run_id(self, run_id: str) -> contextlib.AbstractContextManager[object]:
        return named_run(run_id)

    async def history(self, run_id: str) -> RunHistory:
        """The run's steps from its event log (RunNotFoundError for an unknown id)."""
        record = await self.engine.get_run(run_id)
        steps: list[RunStep] = []
        # Tool steps by journal key, so an output recorded later marks its request finished.
        tools: dict[str, int] = {}
        for event in map(parse, await self.engine.list_events(run_id)):
            if isinstance(event, ModelCalled):
                turn = event.ordinal + 1
                steps.append(RunStep("model_call", turn, event.agent))
                for call in event.tools:
                    tools[event.key_of(call)] = len(steps)
                    steps.append(RunStep("tool_call", turn, call.name, call.call_id, False))
            elif isinstance(event, ToolCalled):
                at = tools.get(event.key)
                if at is None:  # an output without its request: not a step this run asked for
                    continue
                step = steps[at]
                steps[at] = RunStep(step.kind, step.turn, step.name, step.call_id, True)
        return RunHistory(run_id, tuple(steps), record.status not in _UNFINISHED)
