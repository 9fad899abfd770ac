"""The module the `runplane` entry point names: it contributes the `deadline` backend."""

from collections.abc import Callable, Mapping

import runplane


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], runplane.RunnerBackend]]:
    from .backend import DeadlineBackend  # imported lazily: listing backends stays cheap

    return {"deadline": DeadlineBackend}
