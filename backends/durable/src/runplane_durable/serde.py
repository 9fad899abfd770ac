"""How journal entries are stored: exact round-trips, or a clear refusal.

A replay must hand the SDK loop the very same values the live run saw: a tool output that came
back as a list instead of a tuple would be rendered differently in the next model request and the
replay would diverge. So values are tagged with their type and only types that round-trip exactly
are accepted; anything else raises `JournalSerializationError` before the run moves on. The tags
themselves, and reading a value as plain data without rebuilding it, are `codec`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pydantic
import pydantic_core

if TYPE_CHECKING:  # the SDK is imported when a model response is first (de)serialized, not here:
    # the CLI reads the store, which uses this module, without importing the SDK
    from agents.items import ModelResponse, TResponseStreamEvent

from . import lazy_errors as errors
from .codec import DATA, DICT, DISPLAY, JSON, LIST, TUPLE, TYPE

__all__ = [
    "dump_display",
    "dump_json",
    "dump_model_response",
    "dump_stream_events",
    "dump_value",
    "fingerprint",
    "load_json",
    "load_model_response",
    "load_stream_events",
    "load_value",
    "session_item_text",
    "storable_text",
    "type_name",
]


@functools.cache
def _model_response() -> pydantic.TypeAdapter[ModelResponse]:
    from agents.items import ModelResponse

    return pydantic.TypeAdapter(ModelResponse)


@functools.cache
def _stream_events() -> pydantic.TypeAdapter[list[TResponseStreamEvent]]:
    from agents.items import TResponseStreamEvent

    return pydantic.TypeAdapter(list[TResponseStreamEvent])


_SCALARS = (str, int, float, bool, type(None))


_SURROGATE = re.compile("[\ud800-\udfff]")


def dump_json(data: Any) -> str:
    """JSON text any database stores as it is, and `load_json` turns back into `data` exactly.

    Control characters, NUL among them, are always escaped by the encoder (PostgreSQL text
    cannot hold a raw NUL). Other text stays unescaped (compact), except lone surrogates: they
    have no UTF-8 form, so the database driver could not send them, and are escaped too. (A high
    and a low surrogate written as two code points come back as the one character they spell,
    which is also what any JSON request to a model makes of them.)
    """
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not text.isascii():
        try:
            text.encode("utf-8")  # in C, faster than searching for a surrogate
        except UnicodeEncodeError:
            # Only inside JSON strings can one occur, where \uXXXX means the same character.
            text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def storable_text(text: str) -> str:
    """`text` as every database can store it in a text column (an error message, say): NUL and
    lone surrogates written as escapes. For text that is shown, never parsed back."""
    if text.isascii():
        return text.replace("\x00", "\\x00") if "\x00" in text else text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def session_item_text(item: Any) -> str:
    """A session item as JSON text (`dump_json`); JournalSerializationError, saying what to pass
    instead, for one that is not JSON data. An SDK item (a dict) always is; a pydantic item is
    stored as its JSON form."""
    dump = getattr(item, "model_dump", None)
    if callable(dump):
        item = dump(mode="json", exclude_unset=True)
    try:
        return dump_json(item)
    except (TypeError, ValueError) as exc:
        raise errors.JournalSerializationError(
            f"a session item must be JSON data (an SDK input item is a dict of those): {exc}. "
            "Pass the item as the SDK makes it, or its JSON form.",
            leaf=type(item).__qualname__,
        ) from exc


def load_json(text: str) -> Any:
    return json.loads(text)


def dump_model_response(response: ModelResponse) -> Any:
    # exclude_unset: the SDK renders items with exclude_unset, so a replayed item must not
    # gain fields the live one never set (it would change the next request).
    return _model_response().dump_python(response, mode="json", exclude_unset=True)


def load_model_response(data: Any) -> ModelResponse:
    return _model_response().validate_python(data)


def dump_stream_events(events: Sequence[TResponseStreamEvent]) -> Any:
    return _stream_events().dump_python(list(events), mode="json", exclude_unset=True)


def load_stream_events(data: Any) -> list[TResponseStreamEvent]:
    return _stream_events().validate_python(data)


def _is_plain_json(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return not isinstance(value, float) or math.isfinite(value)  # JSON has no NaN, no inf
    if type(value) is list:
        return all(_is_plain_json(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_plain_json(v) for k, v in value.items())
    return False


def _type_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


_adapters: dict[type, pydantic.TypeAdapter[Any]] = {}


def _adapter(cls: type) -> pydantic.TypeAdapter[Any]:
    adapter = _adapters.get(cls)
    if adapter is None:
        adapter = _adapters[cls] = pydantic.TypeAdapter(cls)
    return adapter


def dump_value(value: Any, *, what: str, path: str = "result") -> Any:
    """Encode a tool output or final output; `what` names it in the error message, which also
    names the `path` inside the value where the first thing that cannot be stored is."""
    if _is_plain_json(value):
        return {JSON: value}
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        items = [dump_value(v, what=what, path=f"{path}[{i}]") for i, v in enumerate(value)]
        return {TUPLE: items} if type(value) is tuple else {LIST: items}
    if type(value) is dict:
        for k in value:
            if type(k) is not str:
                raise _unserializable(value, what, path, f"its key {k!r} is not a str")
        return {
            DICT: {k: dump_value(v, what=what, path=f"{path}[{_key(k)}]") for k, v in value.items()}
        }
    cls = type(value)
    if isinstance(value, pydantic.BaseModel) or dataclasses.is_dataclass(value):
        try:
            # warnings="error": a value pydantic can only dump with a warning does not round-trip,
            # and a warning would also print the value (possibly secret) to the logs.
            data = _adapter(cls).dump_python(value, mode="json", warnings="error")
            restored = _adapter(cls).validate_python(data)
        except Exception as exc:
            raise _unserializable(
                value, what, path, f"pydantic could not round-trip it ({exc})"
            ) from exc
        if restored != value:
            raise _unserializable(value, what, path, "it does not compare equal after a round-trip")
        dump_json(data)
        return {TYPE: _type_path(cls), DATA: data}
    if isinstance(value, float):
        raise _unserializable(value, what, path, f"JSON has no {value!r}")
    raise _unserializable(value, what, path, "its type is not one the journal stores")


def _key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)


def type_name(cls: type) -> str:
    """`datetime.datetime`, `app.Invoice`; a builtin by its own name (`set`)."""
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def dump_display(value: Any) -> Any:
    """Encode a final output for people and the API; never raises, never warns.

    A replay reproduces the final output from the journal, so, unlike a tool output, it does not
    have to round-trip: what cannot be stored exactly is stored as plain data or its type name.
    """
    try:
        return dump_value(value, what="the final output")
    except errors.JournalSerializationError:
        pass
    try:
        data = pydantic_core.to_jsonable_python(value, serialize_unknown=True)
        dump_json(data)
    except (ValueError, TypeError, pydantic_core.PydanticSerializationError):
        return {DISPLAY: f"<{type(value).__qualname__}>"}
    return {DISPLAY: data}


def load_value(data: Any) -> Any:
    if JSON in data:
        return data[JSON]
    if LIST in data:
        return [load_value(v) for v in data[LIST]]
    if TUPLE in data:
        return tuple(load_value(v) for v in data[TUPLE])
    if DICT in data:
        return {k: load_value(v) for k, v in data[DICT].items()}
    module_name, _, qualname = data[TYPE].partition(":")
    # Only classes already imported by the program are rebuilt: a journal never causes an
    # import, so a tampered database cannot make this process run a module's top-level code.
    module = sys.modules.get(module_name)
    if module is None:
        raise errors.JournalSerializationError(
            f"the journal holds a {data[TYPE]} value, but module {module_name!r} is not "
            "imported in this process; import the module that defines it before resuming the run"
        )
    cls: Any = module
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return _adapter(cls).validate_python(data[DATA])


def _unserializable(value: Any, what: str, path: str, why: str) -> errors.JournalSerializationError:
    leaf = type_name(type(value))
    return errors.JournalSerializationError(
        f"{what} returned a value the durable journal cannot store exactly: {path}: {leaf} "
        f"({why}). Return a str, JSON-compatible data (dict, list, numbers), a pydantic model or "
        "a dataclass of those (a datetime as its .isoformat(), say). Everything journaled so "
        "far is kept: fix the tool and run again with the same run id to resume.",
        path=path,
        leaf=leaf,
    )


def _canonical(value: Any) -> Any:
    """What the JSON encoder calls for a value it cannot encode itself."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return type(value).__qualname__  # stable across processes, unlike repr()


# Built once: json.dumps with options builds an encoder per call, which costs more than encoding
# a small value. Same output as json.dumps(value, sort_keys=True, separators=(",", ":")).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_canonical)


def fingerprint(request: Any) -> str:
    """A short stable digest of what a model call was asked, to detect a diverging replay.

    The C encoder walks the request (dicts, lists, scalars) and calls `_canonical` only for the
    rest: a Python walk of every item would cost more than the rest of the step's bookkeeping.
    """
    try:
        canonical = _CANONICAL.encode(request)
    except TypeError:  # dict keys that are not strings or do not sort: compare them as text
        canonical = json.dumps(
            _text_keys(request),
            sort_keys=True,
            separators=(",", ":"),
            default=lambda value: _text_keys(_canonical(value)),
        )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _text_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(v) for v in value]
    return value
