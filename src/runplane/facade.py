"""Runner classes with `agents.Runner`'s classmethods, bound to a backend by name.

`runner(name)` is the one mechanism under every way of choosing a backend: the import line
(`from runplane_durable import Runner`), the name (`runplane.runner("durable")`), the environment
(`from runplane import Runner` reads RUNPLANE_BACKEND at call time) and `runplane.install`.

It is also where what holds for every backend is applied, so that no backend has to: the endpoint
settings (`runplane.endpoint`, read per call), and the observers (`runplane.observe`), which get
the run id the backend reserves for the run when it can name one (`RunnerBackend` text).
"""

from __future__ import annotations

import inspect
import os
from typing import Any, ClassVar, cast

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming, RunState, Session
from agents.items import TResponseInputItem
from agents.run import DEFAULT_MAX_TURNS
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

from . import _sdk
from .endpoint import OpenAISettings, check_history, with_provider
from .observe import RunObservation
from .protocol import RunnerBackend, reserved_run_id
from .registry import Registry, default_registry

__all__ = ["DEFAULT_BACKEND", "ENV_BACKEND", "BackendRunner", "Runner", "runner"]

ENV_BACKEND = "RUNPLANE_BACKEND"
DEFAULT_BACKEND = "openai"


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

    @classmethod
    async def run(
        cls,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        *,
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
    ) -> RunResult:
        settings = OpenAISettings.from_env()  # a bad setting is a SettingsError on any backend
        name, backend, registry = cls._resolve()
        with reserved_run_id(backend) as run_id:
            observation = RunObservation(registry.hook, name, starting_agent, "run", run_id)
            observation.start()
            try:
                check_history(
                    settings, previous_response_id, auto_previous_response_id, conversation_id
                )
                run_config, provider = with_provider(run_config, settings)
                try:
                    result = await backend.run(
                        starting_agent,
                        input,
                        context=context,
                        max_turns=max_turns,
                        hooks=hooks,
                        run_config=run_config,
                        error_handlers=error_handlers,
                        previous_response_id=previous_response_id,
                        auto_previous_response_id=auto_previous_response_id,
                        conversation_id=conversation_id,
                        session=session,
                    )
                finally:
                    if provider is not None:
                        await provider.aclose()
            except BaseException as exc:
                observation.finish(None, exc)
                if not _sdk.is_data_redacted(exc):
                    raise
                _sdk.detach_redacted_traceback(exc)
                redacted = exc
            else:
                observation.finish(result, None)
                return result
        # As agents.Runner does: re-raise from a frame that holds none of the run's data.
        starting_agent = input = context = hooks = run_config = cast(Any, None)
        error_handlers = session = backend = provider = cast(Any, None)
        previous_response_id = conversation_id = None
        _sdk.raise_redacted(redacted)

    @classmethod
    def run_sync(
        cls,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        *,
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
    ) -> RunResult:
        settings = OpenAISettings.from_env()  # a bad setting is a SettingsError on any backend
        name, backend, registry = cls._resolve()
        with reserved_run_id(backend) as run_id:
            observation = RunObservation(registry.hook, name, starting_agent, "run_sync", run_id)
            observation.start()
            try:
                check_history(
                    settings, previous_response_id, auto_previous_response_id, conversation_id
                )
                run_config, provider = with_provider(run_config, settings)
                try:
                    result = backend.run_sync(
                        starting_agent,
                        input,
                        context=context,
                        max_turns=max_turns,
                        hooks=hooks,
                        run_config=run_config,
                        error_handlers=error_handlers,
                        previous_response_id=previous_response_id,
                        auto_previous_response_id=auto_previous_response_id,
                        conversation_id=conversation_id,
                        session=session,
                    )
                finally:
                    if provider is not None:
                        provider.close_now()
            except BaseException as exc:
                observation.finish(None, exc)
                if not _sdk.is_data_redacted(exc):
                    raise
                _sdk.detach_redacted_traceback(exc)
                redacted = exc
            else:
                observation.finish(result, None)
                return result
        # As agents.Runner does: re-raise from a frame that holds none of the run's data.
        starting_agent = input = context = hooks = run_config = cast(Any, None)
        error_handlers = session = backend = provider = cast(Any, None)
        previous_response_id = conversation_id = None
        _sdk.raise_redacted(redacted)

    @classmethod
    def run_streamed(
        cls,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
        *,
        error_handlers: RunErrorHandlers[TContext] | None = None,
    ) -> RunResultStreaming:
        settings = OpenAISettings.from_env()  # a bad setting is a SettingsError on any backend
        name, backend, registry = cls._resolve()
        with reserved_run_id(backend) as run_id:
            observation = RunObservation(
                registry.hook, name, starting_agent, "run_streamed", run_id
            )
            observation.start()
            provider = None
            try:
                check_history(
                    settings, previous_response_id, auto_previous_response_id, conversation_id
                )
                run_config, provider = with_provider(run_config, settings)
                result = backend.run_streamed(
                    starting_agent,
                    input,
                    context=context,
                    max_turns=max_turns,
                    hooks=hooks,
                    run_config=run_config,
                    previous_response_id=previous_response_id,
                    auto_previous_response_id=auto_previous_response_id,
                    conversation_id=conversation_id,
                    session=session,
                    error_handlers=error_handlers,
                )
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
