"""Model options for a host context: the model, its settings and the endpoint it is called at."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from agents import ModelSettings
from agents.models.interface import Model
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI

from ..errors import RunplaneError

__all__ = ["DEFAULT_MODEL", "Api", "HostSetupError", "ModelOptions", "ResolvedModel", "resolve"]

DEFAULT_MODEL = "gpt-4.1-mini"
"""The model a host context uses when its options name none."""

Api = Literal["responses", "chat_completions"]
APIS: tuple[str, ...] = get_args(Api)

# Fields of a host's own options object (d:spatch style) that are model settings.
_SETTING_FIELDS = tuple(f.name for f in dataclasses.fields(ModelSettings))


class HostSetupError(RunplaneError, ValueError):
    """A host context set up with something it cannot use; says what and what to pass instead."""


@dataclass(frozen=True)
class ModelOptions:
    """The model (a name, or an SDK `Model`) and its `ModelSettings`."""

    model: str | Model | None = DEFAULT_MODEL
    settings: ModelSettings | None = None


@dataclass(frozen=True)
class ResolvedModel:
    """What the agent is built with: its model, settings, and the API it speaks when known."""

    model: str | Model | None
    settings: ModelSettings
    api: Api | None


def _fields(options: object) -> dict[str, Any]:
    """An options object's fields: a dataclass's, a namedtuple's, or a mapping's."""
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    as_dict = getattr(options, "_asdict", None)
    if isinstance(options, tuple) and callable(as_dict):
        return dict(as_dict())
    if isinstance(options, dict):
        return dict(options)
    raise HostSetupError(
        f"options must be runplane.host.ModelOptions, a dataclass or namedtuple with a `model` "
        f"field, or a dict; got a {type(options).__name__}"
    )


def _settings(fields: dict[str, Any]) -> ModelSettings:
    """`settings`/`model_settings` if given, with loose setting fields (temperature=...) on top."""
    given = fields.get("settings", fields.get("model_settings"))
    if given is not None and not isinstance(given, ModelSettings):
        raise HostSetupError(
            f"options.settings must be an agents.ModelSettings, got {type(given).__name__}"
        )
    loose = {k: v for k, v in fields.items() if k in _SETTING_FIELDS and v is not None}
    base = given or ModelSettings()
    return base.resolve(ModelSettings(**loose)) if loose else base


def api_of(model: object) -> Api | None:
    """The API an SDK model object speaks, None when it is not one of the SDK's OpenAI models."""
    if isinstance(model, OpenAIChatCompletionsModel):
        return "chat_completions"
    if isinstance(model, OpenAIResponsesModel):
        return "responses"
    return None


def resolve(options: object, client: AsyncOpenAI | None, api: str | None) -> ResolvedModel:
    """The model the agent is built with.

    A `client` (an `AsyncOpenAI` pointed at any OpenAI-compatible endpoint) is wrapped as the
    SDK's Chat Completions model, as most compatible servers speak only that API, or as its
    Responses model with `api="responses"`. Without a client a model name goes to the backend's
    own provider (RUNPLANE_OPENAI_* settings, else OpenAI).
    """
    if api is not None and api not in APIS:
        raise HostSetupError(f"api={api!r} is not one of {', '.join(map(repr, APIS))} (or None)")
    fields = _fields(options if options is not None else ModelOptions())
    if "model" not in fields:
        raise HostSetupError(
            f"the options object ({type(options).__name__}) has no `model` field; give it one "
            "holding a model name or an agents Model"
        )
    model = fields["model"] if fields["model"] is not None else DEFAULT_MODEL
    settings = _settings(fields)
    if not isinstance(model, (str, Model)):
        raise HostSetupError(
            f"options.model must be a model name or an agents Model, got {type(model).__name__}"
        )
    if client is not None:
        if not isinstance(model, str):
            raise HostSetupError(
                "a client is given with a model object; give the model's name "
                "(the client is wrapped as that model), or no client"
            )
        if api == "responses":
            return ResolvedModel(
                OpenAIResponsesModel(model=model, openai_client=client), settings, "responses"
            )
        return ResolvedModel(
            OpenAIChatCompletionsModel(model=model, openai_client=client),
            settings,
            "chat_completions",
        )
    if api is not None:
        raise HostSetupError(
            f"api={api!r} says how to wrap `client`, and no client is given: pass "
            "client=AsyncOpenAI(base_url=...), or leave api=None (a model name then goes to the "
            "backend's provider, which RUNPLANE_OPENAI_API configures)"
        )
    return ResolvedModel(model, settings, api_of(model))
