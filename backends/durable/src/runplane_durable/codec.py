"""The journal's value tags, and the one function that turns an encoded value into plain data.

A tool output or final output is stored as one tagged object (`serde.dump_value` writes them,
`serde.load_value` rebuilds the very value): `{"json": data}` for plain JSON data, `{"list":
[...]}`, `{"tuple": [...]}` and `{"dict": {...}}` of encoded values, `{"type": "module:Class",
"data": ...}` for a pydantic model or dataclass, and `{"display": data}` for a final output kept
for people only (it does not round-trip). No SDK or pydantic import: the CLI, a server and a UI
read values with `plain_value` without rebuilding any class.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["DATA", "DICT", "DISPLAY", "JSON", "LIST", "TAGS", "TUPLE", "TYPE", "plain_value"]

JSON: Final = "json"
LIST: Final = "list"
TUPLE: Final = "tuple"
DICT: Final = "dict"
TYPE: Final = "type"  # with DATA: the class a pydantic model or dataclass is rebuilt as
DATA: Final = "data"
DISPLAY: Final = "display"
TAGS: tuple[str, ...] = (JSON, LIST, TUPLE, DICT, TYPE, DATA, DISPLAY)


def plain_value(encoded: Any) -> Any:
    """An encoded value as plain JSON data, for people and APIs: a tuple as a list, a model or
    dataclass as its data; no class is imported. Anything not tagged comes back as it is."""
    if not isinstance(encoded, dict):
        return encoded
    if JSON in encoded:
        return encoded[JSON]
    for tag in (LIST, TUPLE):
        if tag in encoded:
            return [plain_value(v) for v in encoded[tag]]
    if DICT in encoded:
        return {k: plain_value(v) for k, v in encoded[DICT].items()}
    if DATA in encoded:
        return encoded[DATA]
    if DISPLAY in encoded:
        return encoded[DISPLAY]
    return encoded
