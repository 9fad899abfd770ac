"""Kill-and-resume trials of the durability profile, and what each requirement makes of them.

A trial runs a script three times on the backend, each in a fresh child of the fork server: once
uninterrupted (under a run id of its own: the expected result), once killed with SIGKILL at a
kill point, and once more under the killed run's id, which must resume it. The ledgers say which
process asked the model for which turn and ran which tool; the history (read through the
backend's `DurableCapabilities` just before the resume, and again after it) says what the backend
had recorded. `judge` turns one trial into problems per requirement id: an empty list is a pass.

What must be recorded at a kill is fixed by the script, not taken from the backend's word: after
model call k the run has recorded model calls 1..k and the outputs of every tool of the turns
before k (model call k was asked with them). The outputs of turn k's own tools may or may not be
recorded when the process dies (a backend may commit them after the tool returned); the history
says which, and a tool it shows recorded must not run again.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from ._durable_program import MODEL_LOG, TOOL_LOG, KillPoint, Script, Variant
from ._fork_client import ForkServer, Outcome

__all__ = ["DURABLE_IDS", "Divergence", "Trial", "Trials", "judge", "judge_divergence"]

DURABLE_IDS = ("DUR-1", "DUR-2", "DUR-3", "DUR-5")
"""The requirements a kill-and-resume trial is judged on (DUR-4 has trials of its own)."""

Problems = dict[str, list[str]]


def _short(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclasses.dataclass(frozen=True)
class Trial:
    """One kill and its resume: the script, where it was killed, and what each process did."""

    script: Script
    kill: KillPoint
    kill_mode: str
    resume_mode: str
    expected: Outcome
    killed: Outcome
    resumed: Outcome
    models: list[tuple[int, int]]  # (turn, pid) of every real model call, in order
    tools: list[tuple[str, int]]  # (call id, pid) of every tool side effect, in order

    def describe(self) -> str:
        return (
            f"script [{self.script.describe()}] ({self.script!r}); killed {self.kill.describe()} "
            f"in {self.kill_mode}, resumed in {self.resume_mode}"
        )


def _ledger(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    lines = path.read_text("utf-8").splitlines()
    return [(what, int(pid)) for what, pid in (line.rsplit(" ", 1) for line in lines)]


class Trials:
    """Runs trials on one backend through one fork server, each under fresh run ids."""

    def __init__(self, backend: str, server: ForkServer, workdir: Path) -> None:
        self.backend = backend
        self.server = server
        self.workdir = workdir
        self.prefix = f"conformance-{uuid.uuid4().hex[:10]}"  # unique in a shared database
        self._count = 0
        self._expected: dict[tuple[str, str], Outcome] = {}

    def _fresh(self) -> tuple[str, Path]:
        self._count += 1
        ledger = self.workdir / f"trial-{self._count}"
        ledger.mkdir()
        return f"{self.prefix}-{self._count}", ledger

    def job(self, script: Script, run_id: str, ledger: Path, mode: str, **extra: Any) -> Outcome:
        return self.server.run(
            {
                "backend": self.backend,
                "run_id": run_id,
                "script": script.to_json(),
                "mode": mode,
                "ledger": str(ledger),
                **extra,
            }
        )

    def expected(self, script: Script, mode: str) -> Outcome:
        """The script's uninterrupted run in `mode` (once per script and mode)."""
        key = (json.dumps(script.to_json()), mode)
        if key not in self._expected:
            run_id, ledger = self._fresh()
            self._expected[key] = self.job(script, run_id, ledger, mode)
        return self._expected[key]

    def trial(self, script: Script, kill: KillPoint, kill_mode: str, resume_mode: str) -> Trial:
        expected = self.expected(script, resume_mode)
        run_id, ledger = self._fresh()
        killed = self.job(script, run_id, ledger, kill_mode, kill=dataclasses.asdict(kill))
        resumed = self.job(
            script, run_id, ledger, resume_mode, history_before=True, history_after=True
        )
        models = [(int(turn), pid) for turn, pid in _ledger(ledger / MODEL_LOG)]
        return Trial(
            script,
            kill,
            kill_mode,
            resume_mode,
            expected,
            killed,
            resumed,
            models,
            _ledger(ledger / TOOL_LOG),
        )

    def divergence(self, script: Script, kill: KillPoint, variant: Variant) -> Divergence:
        """Kill a run, resume it with the program changed by `variant`, then as it was."""
        expected = self.expected(script, "run")
        run_id, ledger = self._fresh()
        killed = self.job(script, run_id, ledger, "run", kill=dataclasses.asdict(kill))
        changed = self.job(script, run_id, ledger, "run", variant=variant)
        original = self.job(script, run_id, ledger, "run")
        models = [(int(turn), pid) for turn, pid in _ledger(ledger / MODEL_LOG)]
        return Divergence(
            variant,
            script,
            kill,
            expected,
            killed,
            changed,
            original,
            models,
            _ledger(ledger / TOOL_LOG),
        )


def _result_problems(what: str, got: Outcome, expected: Outcome) -> list[str]:
    """`got` finished with the uninterrupted run's result, else why not."""
    base = expected.output or {}
    if "result" not in base:
        return [f"the uninterrupted run did not finish: {base.get('error') or expected.describe()}"]
    out = got.output
    if out is None:
        return [f"{what}: {got.describe()}"]
    if "error" in out:
        error = out["error"]
        return [f"{what} raised {error['type']}: {error['message']}"]
    problems = []
    for name, want in base["result"].items():
        have = out["result"].get(name)
        if have != want:
            problems.append(
                f"{what} differs from the uninterrupted run in {name}: "
                f"{_short(have)} instead of {_short(want)}"
            )
    return problems


def _steps(history: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in history["steps"] if s["kind"] == kind]


def _history_problems(
    when: str, history: dict[str, Any] | None, script: Script, turns: int, finished: bool
) -> list[str]:
    """The history shows model calls 1..`turns` and the tools they asked for, in order."""
    if history is None:
        return [f"the history {when} was not read (the process died first)"]
    if "error" in history:
        return [f"reading the history {when} failed: {history['error']}"]
    problems: list[str] = []
    models = _steps(history, "model_call")
    if [s["turn"] for s in models] != list(range(1, turns + 1)):
        problems.append(
            f"the history {when} shows model calls {[s['turn'] for s in models]}, not 1..{turns}"
        )
    if not all(s["finished"] for s in models):
        problems.append(f"the history {when} shows a recorded model call unfinished")
    agents = _agents(script)
    names = [s["name"] for s in models]
    if names != agents[: len(names)]:
        problems.append(f"the history {when} names the agents {names}, not {agents[:turns]}")
    tools = _steps(history, "tool_call")
    for turn in range(1, turns + 1):
        asked = [s["call_id"] for s in tools if s["turn"] == turn]
        if asked != script.call_ids(turn):
            problems.append(
                f"the history {when} shows tool calls {asked} for model call {turn}, which "
                f"asked for {script.call_ids(turn)}"
            )
    if extra := [s["call_id"] for s in tools if s["turn"] > turns]:
        problems.append(f"the history {when} shows tool calls {extra} that were never asked for")
    order = [(s["turn"], 0 if s["kind"] == "model_call" else 1) for s in history["steps"]]
    if order != sorted(order):
        taken = [(s["kind"], s["turn"]) for s in history["steps"]]
        problems.append(f"the history {when} is out of order: {taken}")
    if history["finished"] != finished:
        state = "finished" if history["finished"] else "unfinished"
        problems.append(f"the history {when} says the run is {state}")
    return problems


def _agents(script: Script) -> list[str]:
    """The agent answering each turn: main, then helper after a handoff."""
    names, current = [], "main"
    for turn in script.turns:
        names.append(current)
        if turn.handoff:
            current = "helper"
    return names


def judge(trial: Trial) -> Problems:
    """What the trial shows against each of DUR-1, DUR-2, DUR-3 and DUR-5."""
    problems: Problems = {rid: [] for rid in DURABLE_IDS}
    script, kill = trial.script, trial.kill
    n, k = len(script.turns), kill.turn
    if not trial.killed.killed:
        problems["DUR-1"].append(
            f"the process to be killed {kill.describe()} never got there: {trial.killed.describe()}"
        )
        return problems
    problems["DUR-1"] += _result_problems("the resumed run", trial.resumed, trial.expected)

    resume_pid = trial.resumed.pid
    asked = [turn for turn, pid in trial.models if pid == resume_pid]
    if asked != list(range(k + 1, n + 1)):
        again = sorted(set(asked) & set(range(1, k + 1)))
        detail = f"; turns {again} were recorded before the kill" if again else ""
        problems["DUR-3"].append(
            f"the resumed process asked the model for turns {asked}, not "
            f"{list(range(k + 1, n + 1))} (the kill came after model call {k}){detail}"
        )

    out = trial.resumed.output or {}
    before = out.get("history_before")
    must = {cid for turn in range(1, k) for cid in script.call_ids(turn)}
    shown: set[str] = set()
    if before is not None and "error" not in before:
        shown = {s["call_id"] for s in _steps(before, "tool_call") if s["finished"]}
    recorded = must | shown
    ran = Counter(cid for cid, pid in trial.tools if pid == resume_pid)
    for turn in range(1, n + 1):
        for cid in script.call_ids(turn):
            if cid in recorded and ran[cid]:
                why = "shown finished in its history" if cid in shown else "asked with its output"
                problems["DUR-2"].append(
                    f"tool call {cid} ran again in the resumed process ({ran[cid]}x), though "
                    f"its output was recorded before the kill ({why})"
                )
            elif cid not in recorded and ran[cid] != 1:
                problems["DUR-2"].append(
                    f"tool call {cid}, not recorded at the kill, ran {ran[cid]}x in the resumed "
                    "process instead of once"
                )

    history = _history_problems("after the kill", before, script, k, finished=False)
    if before is not None and "error" not in before:
        tools = {s["call_id"]: s for s in _steps(before, "tool_call")}
        if unfinished := sorted(c for c in must if c in tools and not tools[c]["finished"]):
            history.append(
                f"the history after the kill shows tool calls {unfinished} unfinished, though "
                f"model call {k} was asked with their outputs"
            )
        if kill.kind in ("tool_start", "tool_mid") and tools.get(kill.call_id or "", {}).get(
            "finished"
        ):
            history.append(
                f"the history after the kill shows tool call {kill.call_id} finished, though "
                "it never returned (it was in flight)"
            )
    after = out.get("history_after")
    history += _history_problems("after the resume", after, script, n, finished=True)
    left = [] if after is None or "error" in after else _steps(after, "tool_call")
    if unfinished := [s["call_id"] for s in left if not s["finished"]]:
        history.append(f"the history after the resume shows {unfinished} unfinished")
    problems["DUR-5"] += history
    return problems


@dataclasses.dataclass(frozen=True)
class Divergence:
    """A killed run resumed by a changed program, then by the program it was started with."""

    variant: Variant
    script: Script
    kill: KillPoint
    expected: Outcome
    killed: Outcome
    changed: Outcome
    original: Outcome
    models: list[tuple[int, int]]
    tools: list[tuple[str, int]]

    def describe(self) -> str:
        return (
            f"changed {self.variant}, after a kill {self.kill.describe()} of script "
            f"[{self.script.describe()}]"
        )


def judge_divergence(trial: Divergence) -> list[str]:
    """DUR-4: the changed program is refused with a divergence error and runs nothing; the run
    then resumes with its own program as if the refused attempt never happened."""
    if not trial.killed.killed:
        return [f"the process to be killed never got there: {trial.killed.describe()}"]
    problems: list[str] = []
    out = trial.changed.output
    if out is None:
        problems.append(f"the changed program's process died: {trial.changed.describe()}")
    elif "error" not in out:
        problems.append(
            "the changed program's resume finished the run instead of raising one of the "
            f"backend's divergence_errors: it returned {_short(out['result']['final_output'])}"
        )
    elif not out["error"]["divergence"]:
        error = out["error"]
        problems.append(
            f"the changed program's resume raised {error['type']} ({error['message']}), which "
            "is not one of the backend's divergence_errors"
        )
    pid = trial.changed.pid
    if asked := [turn for turn, p in trial.models if p == pid]:
        problems.append(f"the changed program reached the model (turns {asked}) before failing")
    if ran := [cid for cid, p in trial.tools if p == pid]:
        problems.append(f"the changed program ran tools {ran} before failing")
    problems += _result_problems(
        "the resume with the original program after the refusal", trial.original, trial.expected
    )
    return problems
