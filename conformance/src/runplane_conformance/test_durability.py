"""DUR: the durability profile (`--runplane-durable`): runs survive kill -9, and say what they did.

A durable backend offers `runplane.DurableCapabilities` through `backend.durability()`: run under
an id, read a run's history, name its divergence errors. With them, a script (scripted model
turns, parallel tool calls, a handoff, a reply) runs in a child process of a fork server
(`_fork_server`), which is killed with SIGKILL at a step boundary; another child runs the same id
again, which must resume the run. Each step boundary of a fixed script is a kill point in turn,
and hypothesis generates more scripts with a kill point drawn from each. The trials run once per
backend; each requirement's test judges them from its own side (`_durable_trials.judge`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from runplane import BackendRunner, DurableCapabilities, durability_of

from ._durable_program import VARIANTS, Call, KillPoint, Script, Turn, Variant, kill_points
from ._durable_trials import Divergence, Problems, Trial, Trials, judge, judge_divergence
from ._fork_client import ForkServer
from ._support import MODES, requirement
from .plugin import ConformanceSettings

DOCS = "docs/conformance.md, 'The durability profile'"

FIXED = Script(
    (
        Turn(calls=(Call("fetch", "a"), Call("store", "b"))),  # parallel tool calls
        Turn(handoff=True),
        Turn(calls=(Call("fetch", "c"),), text="one more", input_tokens=5, output_tokens=4),
        Turn(text="all done", input_tokens=7, output_tokens=1),
    )
)
"""Killed at every one of its step boundaries in turn."""
DIVERGENCE_KILL = KillPoint("tool_mid", 1, "t1-c1")
"""Model call 1 recorded, a tool in flight: a resume would replay, then go on live."""


def _turns() -> st.SearchStrategy[Turn]:
    calls = st.lists(
        st.builds(Call, st.sampled_from(["fetch", "store"]), st.sampled_from("abcd")),
        min_size=1,
        max_size=2,
    ).map(tuple)
    return st.builds(
        Turn,
        calls=calls,
        text=st.none() | st.just("working on it"),
        input_tokens=st.integers(1, 9),
        output_tokens=st.integers(1, 9),
    )


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """Zero to three turns of tool calls, maybe a handoff among them, then a reply."""
    turns = draw(st.lists(_turns(), max_size=3))
    if draw(st.booleans()):
        turns.insert(draw(st.integers(0, len(turns))), Turn(handoff=True))
    text = draw(st.sampled_from(["done", "finished"]))
    reply = Turn(text=text, input_tokens=draw(st.integers(1, 9)))
    return Script((*turns, reply), input=draw(st.sampled_from(["Go.", "Start now."])))


def trials() -> st.SearchStrategy[tuple[Script, KillPoint, str, str]]:
    modes = st.sampled_from(MODES)
    return scripts().flatmap(
        lambda s: st.tuples(st.just(s), st.sampled_from(kill_points(s)), modes, modes)
    )


class NotDurable(Exception):
    """The backend offers no durability capabilities; the message says what to implement."""


def capabilities(name: str, runner: type[BackendRunner]) -> DurableCapabilities:
    backend = runner.backend()
    kind = f"{type(backend).__module__}.{type(backend).__qualname__}"
    if not callable(getattr(backend, "durability", None)):
        raise NotDurable(
            f"backend {name!r} is not durable: its backend object ({kind}) has no durability() "
            "method, so the profile cannot name, resume or inspect its runs. A durable backend "
            "implements runplane.SupportsDurability: durability() returning a "
            "runplane.DurableCapabilities (run_id(id), async history(id) -> runplane.RunHistory, "
            f"divergence_errors); see {DOCS}. Leave out --runplane-durable for a backend that "
            "does not keep runs across processes."
        )
    caps = durability_of(backend)
    if not isinstance(caps, DurableCapabilities):
        missing = [
            attr for attr in ("run_id", "history", "divergence_errors") if not hasattr(caps, attr)
        ]
        raise NotDurable(
            f"backend {name!r}: {kind}.durability() returned {caps!r}, which is not a "
            f"runplane.DurableCapabilities (missing: {', '.join(missing)}); see {DOCS}."
        )
    return caps


@dataclasses.dataclass
class Campaign:
    """Every trial of one backend, run on first use and judged by each requirement's test."""

    trials: Trials | None
    examples: int
    not_durable: str | None = None
    _judged: list[tuple[Trial, Problems]] | None = None
    _divergences: dict[Variant, Divergence] = dataclasses.field(default_factory=dict)

    def _runner(self) -> Trials:
        if self.not_durable is not None:
            pytest.fail(self.not_durable, pytrace=False)
        assert self.trials is not None
        return self.trials

    def judged(self) -> list[tuple[Trial, Problems]]:
        runner = self._runner()
        if self._judged is None:
            found: list[tuple[Trial, Problems]] = []
            for i, point in enumerate(kill_points(FIXED)):
                trial = runner.trial(FIXED, point, MODES[i % 3], MODES[(i + 1) % 3])
                found.append((trial, judge(trial)))
            if self.examples:

                @settings(
                    max_examples=self.examples,
                    phases=[Phase.generate],
                    database=None,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                )
                @given(trials())
                def generated(spec: tuple[Script, KillPoint, str, str]) -> None:
                    trial = runner.trial(*spec)
                    found.append((trial, judge(trial)))

                generated()
            self._judged = found
        return self._judged

    def divergence(self, variant: Variant) -> Divergence:
        runner = self._runner()
        if variant not in self._divergences:
            self._divergences[variant] = runner.divergence(FIXED, DIVERGENCE_KILL, variant)
        return self._divergences[variant]


@pytest.fixture(scope="session")
def durable_campaign(
    runplane_backend: type[BackendRunner],
    runplane_settings: ConformanceSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Campaign]:
    name = str(runplane_backend.backend_name)
    try:
        capabilities(name, runplane_backend)
    except NotDurable as exc:
        yield Campaign(None, 0, not_durable=str(exc))
        return
    workdir = tmp_path_factory.mktemp(f"durable-{name}")
    # A child may take a while (imports, a database's first connection): never less than 60 s.
    server = ForkServer(workdir, max(60.0, runplane_settings.timeout * 6))
    try:
        yield Campaign(Trials(name, server, workdir), runplane_settings.durable_examples)
    finally:
        server.close()


def _verdict(campaign: Campaign, rid: str) -> None:
    judged = campaign.judged()
    failed = [(trial, problems[rid]) for trial, problems in judged if problems[rid]]
    if not failed:
        return
    shown = "\n".join(
        f"- {trial.describe()}:\n    " + "\n    ".join(found) for trial, found in failed[:3]
    )
    more = f"\n(and {len(failed) - 3} more)" if len(failed) > 3 else ""
    pytest.fail(f"{len(failed)} of {len(judged)} kill-and-resume trials fail {rid}:\n{shown}{more}")


@requirement("DUR-1")
def test_killed_run_resumes_to_the_uninterrupted_result(durable_campaign: Campaign) -> None:
    _verdict(durable_campaign, "DUR-1")


@requirement("DUR-2")
def test_no_recorded_tool_runs_again(durable_campaign: Campaign) -> None:
    _verdict(durable_campaign, "DUR-2")


@requirement("DUR-3")
def test_no_recorded_model_call_is_made_again(durable_campaign: Campaign) -> None:
    _verdict(durable_campaign, "DUR-3")


@requirement("DUR-4")
@pytest.mark.parametrize("variant", VARIANTS)
def test_changed_program_is_refused(durable_campaign: Campaign, variant: Variant) -> None:
    trial = durable_campaign.divergence(variant)
    problems = judge_divergence(trial)
    assert not problems, f"{trial.describe()}:\n" + "\n".join(problems)


@requirement("DUR-5")
def test_history_is_readable_after_a_kill(durable_campaign: Campaign) -> None:
    _verdict(durable_campaign, "DUR-5")
