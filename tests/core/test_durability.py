"""`runplane.durability_of`: a backend is durable when it offers the capabilities, and only then."""

from __future__ import annotations

import contextlib

import runplane
from runplane import DurableCapabilities, RunHistory, RunStep, SupportsDurability, durability_of


class Capabilities:
    divergence_errors: tuple[type[Exception], ...] = (LookupError,)

    def run_id(self, run_id: str) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext(run_id)

    async def history(self, run_id: str) -> RunHistory:
        return RunHistory(run_id, (RunStep("model_call", 1, "main"),), finished=False)


class DurableThing:
    def __init__(self) -> None:
        self.capabilities = Capabilities()

    def durability(self) -> Capabilities:
        return self.capabilities


def test_a_backend_without_durability_is_not_durable() -> None:
    assert durability_of(object()) is None
    assert not isinstance(object(), SupportsDurability)


def test_a_durable_backend_hands_out_its_capabilities() -> None:
    backend = DurableThing()
    assert isinstance(backend, SupportsDurability)
    caps = durability_of(backend)
    assert caps is backend.capabilities
    assert isinstance(caps, DurableCapabilities)


def test_capabilities_without_history_are_not_capabilities() -> None:
    class NoHistory:
        divergence_errors = (LookupError,)

        def run_id(self, run_id: str) -> contextlib.AbstractContextManager[object]:
            return contextlib.nullcontext(run_id)

    assert not isinstance(NoHistory(), DurableCapabilities)


def test_a_step_is_finished_unless_said_otherwise() -> None:
    assert RunStep("tool_call", 2, "fetch", "c1") == RunStep("tool_call", 2, "fetch", "c1", True)


def test_the_direct_backend_is_not_durable() -> None:
    assert durability_of(runplane.runner("openai").backend()) is None
