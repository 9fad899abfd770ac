"""The `runplane` entry point of this distribution."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import runplane
from runplane import RunnerBackend


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], RunnerBackend]]:
    from .backend import OpenAIBackend

    return {"openai": OpenAIBackend}
