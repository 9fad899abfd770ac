"""The module the `runplane` entry point names: it contributes the `deadline` backend."""

from collections.abc import Callable, Mapping

import runplane


def make_backend() -> runplane.RunnerBackend:
    from .backend import DeadlineBackend  # imported when the backend is first asked for

    return DeadlineBackend()


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], runplane.RunnerBackend]]:
    return {"deadline": make_backend}
