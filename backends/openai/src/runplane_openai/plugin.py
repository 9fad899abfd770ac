"""The `runplane` entry point of this distribution."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import runplane

if TYPE_CHECKING:
    from runplane import RunnerBackend


def _openai() -> RunnerBackend:
    # Imported when the backend is first asked for: `runplane backends` and every command that
    # runs no agent stay free of the Agents SDK, which the backend needs.
    from .backend import OpenAIBackend

    return OpenAIBackend()


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], RunnerBackend]]:
    return {"openai": _openai}
