"""BRIDGE: a host is told the same events about a run on the backend as on the direct backend.

Each generated script runs once on the `openai` backend (the direct one) and once on the backend
under test, in the same mode, with a plugin implementing `runplane_host_event`. The host events
(`runplane.bridge`) must be equal after the run id is normalised (`_bridged.normalised`); for
run_streamed, `bridge(result)` must also yield exactly the events the hook was given.
"""

from __future__ import annotations

import runplane
from runplane import BackendRunner

from ._bridged import Bridged, bridged
from ._scripts import Script, over_scripts
from ._support import Mode, requirement
from .plugin import ConformanceSettings

DIRECT = "openai"
TERMINAL = ("run_finished", "run_failed", "run_cancelled")


def _check(backend: type[BackendRunner], mode: Mode, conf: ConformanceSettings) -> None:
    direct = runplane.runner(DIRECT)

    def check(script: Script) -> None:
        expected: Bridged = bridged(direct, mode, script, conf.timeout)
        got = bridged(backend, mode, script, conf.timeout)
        kinds = [event["kind"] for event in got.hooked]
        assert kinds[0] == "run_started", f"{mode}: the first host event is {kinds[0]}"
        ends = [k for k in kinds if k in TERMINAL]
        assert ends == kinds[-1:], f"{mode}: not exactly one terminal event, last: {kinds}"
        assert got.outcome == expected.outcome, f"{mode}: the run ended differently"
        assert got.hooked == expected.hooked, f"{mode}: host events differ from the direct backend"
        if mode == "run_streamed":
            assert got.iterated == got.hooked, "bridge(result) differs from the hook's events"

    over_scripts(check, conf.parity_examples)


@requirement("BRIDGE-1")
def test_host_events_of_run_match_direct(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    _check(runplane_backend, "run", runplane_settings)


@requirement("BRIDGE-1")
def test_host_events_of_run_sync_match_direct(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    _check(runplane_backend, "run_sync", runplane_settings)


@requirement("BRIDGE-1", "BRIDGE-2")
def test_host_events_of_run_streamed_match_direct(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    _check(runplane_backend, "run_streamed", runplane_settings)
