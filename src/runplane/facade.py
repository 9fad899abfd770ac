"""Runner classes with `agents.Runner`'s classmethods, bound to a backend by name.

`runner(name)` is the one mechanism under every way of choosing a backend: the import line
(`from runplane_durable import Runner`), the name (`runplane.runner("durable")`), the environment
(`from runplane import Runner` reads RUNPLANE_BACKEND at call time) and `runplane.install`.

It is also where what holds for every backend is applied, so that no backend has to: the endpoint
settings (`runplane.endpoint`, read per call), the process-wide approval policy
(`runplane.policy.install`: the starting agent is replaced by its guarded clone), and the
observers (`runplane.observe`), which get the run id the backend reserves for the run when it can
name one (`RunnerBackend` text).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import agents
from agents import Agent, RunResult, RunResultStreaming
from agents.run_context import TContext

from .base import RunMode, RunnerBackendBase
from .endpoint import OpenAISettings, apply_endpoint
from .observe import RunObservation
from .options import RunInput, RunOptions
from .policy.process import enforced
from .protocol import RunnerBackend, reserved_run_id
from .registry import Registry, default_registry

__all__ = ["DEFAULT_BACKEND", "ENV_BACKEND", "BackendRunner", "Runner", "runner"]

ENV_BACKEND = "RUNPLANE_BACKEND"
DEFAULT_BACKEND = "openai"
T = TypeVar("T")


class BackendRunner:
    """Base of every runner class; `backend_name = None` means "read RUNPLANE_BACKEND"."""

    backend_name: ClassVar[str | None] = None
    registry: ClassVar[Registry | None] = None

    @classmethod
    def selected_backend(cls) -> str:
        """The backend name a call made now would use."""
        return cls._selection()[0]

    @classmethod
    def _selection(cls) -> tuple[str, str | None]:
        """The backend name, and where it came from when not from code (for error messages).

        Surrounding whitespace in RUNPLANE_BACKEND is dropped (an artifact of .env files and
        shell quoting, never part of a name); case is kept: backend names are case-sensitive
        everywhere, and an unknown name's error suggests the installed name it resembles.
        """
        if cls.backend_name:
            return cls.backend_name, None
        value = os.environ.get(ENV_BACKEND, "")
        if value.strip():
            return value.strip(), f"the {ENV_BACKEND} environment variable: {ENV_BACKEND}={value!r}"
        return DEFAULT_BACKEND, None

    @classmethod
    def _resolve(cls) -> tuple[str, RunnerBackend, Registry]:
        registry = cls.registry or default_registry()
        name, source = cls._selection()
        return name, registry.get(name, source=source), registry

    @classmethod
    def backend(cls) -> RunnerBackend:
        """The backend instance this class runs on (for backend-specific extra methods)."""
        return cls._resolve()[1]

    # The three entry points are the base class's, bound to the class: the signatures are
    # declared once (runplane.base), and `run`/`run_sync` share `_run` below. For type
    # checkers they are agents.Runner's own, which tests/core/test_protocol.py checks they match.
    if TYPE_CHECKING:
        run = agents.Runner.run
        run_sync = agents.Runner.run_sync
        run_streamed = agents.Runner.run_streamed
    else:
        run = classmethod(RunnerBackendBase.run)
        run_sync = classmethod(RunnerBackendBase.run_sync)
        run_streamed = classmethod(RunnerBackendBase.run_streamed)

    @classmethod
    async def _run(
        cls,
        starting_agent: Agent[TContext],
        input: RunInput[TContext],
        options: RunOptions[TContext],
        mode: RunMode,
    ) -> RunResult:
        """What `run` and `run_sync` do around the backend's own entry point of the same name.

        For "run_sync" nothing here awaits (the backend's `run_sync` is called, the provider
        closed synchronously), so `_run_sync` drives this coroutine to its end without a loop.
        """
        settings = OpenAISettings.from_env()  # a bad setting is a SettingsError on any backend
        name, backend, registry = cls._resolve()
        starting_agent = enforced(starting_agent)
        with reserved_run_id(backend, input) as run_id:
            observation = RunObservation(
                registry.hook, name, starting_agent, mode, run_id, input=input
            )
            observation.start()
            try:
                options, provider = apply_endpoint(options, settings)
                try:
                    if mode == "run":
                        result = await backend.run(starting_agent, input, **options.as_kwargs())
                    else:
                        result = backend.run_sync(starting_agent, input, **options.as_kwargs())
                finally:
                    if provider is not None and mode == "run":
                        await provider.aclose()
                    elif provider is not None:
                        provider.close_now()
            except BaseException as exc:
                observation.finish(None, exc)
                raise
            observation.finish(result, None)
            return result

    @classmethod
    def _run_sync(
        cls,
        starting_agent: Agent[TContext],
        input: RunInput[TContext],
        options: RunOptions[TContext],
    ) -> RunResult:
        return _never_suspending(cls._run(starting_agent, input, options, "run_sync"))

    @classmethod
    def _run_streamed(
        cls,
        starting_agent: Agent[TContext],
        input: RunInput[TContext],
        options: RunOptions[TContext],
    ) -> RunResultStreaming:
        settings = OpenAISettings.from_env()  # a bad setting is a SettingsError on any backend
        name, backend, registry = cls._resolve()
        starting_agent = enforced(starting_agent)
        with reserved_run_id(backend, input) as run_id:
            observation = RunObservation(
                registry.hook, name, starting_agent, "run_streamed", run_id, input=input
            )
            observation.start()
            provider = None
            try:
                options, provider = apply_endpoint(options, settings)
                result = backend.run_streamed(starting_agent, input, **options.as_kwargs())
                if inspect.isawaitable(result):
                    _discard(result)
                    raise TypeError(
                        f"backend {name!r} returned {type(result).__name__} from run_streamed; "
                        "run_streamed must be synchronous and return a RunResultStreaming at "
                        "once, as agents.Runner.run_streamed does (see runplane.RunnerBackend)"
                    )
                if provider is not None:
                    provider.close_when_done(result)
                    provider = None
                return observation.stream(result)
            except BaseException as exc:
                if provider is not None:
                    provider.close_now()
                observation.finish(None, exc)
                raise


def _never_suspending(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that completes without suspending, run without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("runplane internal error: the run_sync path awaited something")


def _discard(awaitable: object) -> None:
    """Close an awaitable we will not await, so it is not reported as never awaited."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


class Runner(BackendRunner):
    """`agents.Runner` on the backend RUNPLANE_BACKEND names (default `openai`), read per call."""


_runner_classes: dict[tuple[str, Registry], type[BackendRunner]] = {}


def runner(
    name: str, *, registry: Registry | None = None, check: bool = True
) -> type[BackendRunner]:
    """A class with `agents.Runner`'s classmethods that runs on backend `name`.

    `Runner = runplane.runner("durable")` is a one-line swap. The name is checked now (an unknown
    one lists the installed backends) unless `check=False`, which backends use for their own
    module-level `Runner` so that importing them never loads every plugin.
    """
    reg = registry or default_registry()
    if check:
        reg.entry(name)
    key = (name, reg)
    cls = _runner_classes.get(key)
    if cls is None:
        cls = type(
            "Runner",
            (BackendRunner,),
            {
                "backend_name": name,
                "registry": registry,
                "__qualname__": f"runner({name!r})",
                "__module__": __name__,
                "__doc__": f"`agents.Runner` on the {name!r} runplane backend.",
            },
        )
        _runner_classes[key] = cls
    return cls
