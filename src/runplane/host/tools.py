"""Host tools: what a host injects into its agent, checked, and loaded by `MODULE:ATTR`."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any, get_args, get_origin

from agents.tool import Tool

from .options import HostSetupError

__all__ = ["check_tools", "load_tools"]

# `Tool` is a Union with generic members (ComputerTool[Any]): isinstance needs their origins.
_TOOL_CLASSES: tuple[type, ...] = tuple(get_origin(t) or t for t in get_args(Tool))


def check_tools(tools: Iterable[Any], where: str = "tools") -> list[Tool]:
    """The tools as a list; a non-tool is refused, saying what it is and how to make one."""
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Iterable):
        raise HostSetupError(
            f"{where} must be a list of Agents SDK tools, not {type(tools).__name__}"
        )
    checked = list(tools)
    for tool in checked:
        if not isinstance(tool, _TOOL_CLASSES):
            name = getattr(tool, "__name__", None)
            what = f"{type(tool).__name__} {name!r}" if name else type(tool).__name__
            raise HostSetupError(
                f"{where}: {what} is not an Agents SDK tool (make a function one with "
                "@function_tool)"
            )
    return checked


def load_tools(spec: str) -> list[Tool]:
    """The tools `MODULE:ATTR` names: one SDK tool, or a list/tuple of them."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise HostSetupError(
            f"--tools {spec!r}: give MODULE:ATTR, for example myapp.tools:TOOLS (a tool made with "
            "@function_tool, or a list of them)"
        )
    # As `python -m` would, and as `runplane worker MODULE` does: the console script's sys.path
    # starts with its own bin directory, not the directory the user runs it in.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HostSetupError(f"--tools {spec!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise HostSetupError(f"--tools {spec!r}: module {module_name!r} has no {attr!r}") from None
    return check_tools(value if isinstance(value, (list, tuple)) else [value], f"--tools {spec!r}")
