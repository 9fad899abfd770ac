"""The demo's local model: the optional runplane-localmodel distribution, or what to install.

It is an extra (`runplane-durable[demo]`), not a dependency: the durable backend runs agents in
production, and only this demo, without OPENAI_API_KEY and without --scripted, needs a model built
on the machine. So its absence is a message naming the exact command, not an ImportError.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DurableError
from .command import shell_path

if TYPE_CHECKING:
    from runplane_localmodel import LocalModelServer

__all__ = ["DISTRIBUTION", "install_command", "local_model_server"]

DISTRIBUTION = "runplane-localmodel"


def local_model_server() -> type[LocalModelServer]:
    """The local model's server class; DurableError saying what to install when it is missing."""
    try:
        from runplane_localmodel import LocalModelServer
    except ModuleNotFoundError as exc:
        if exc.name != "runplane_localmodel":
            raise  # installed but broken inside: its own error says more than ours would
        raise DurableError(
            f"The demo needs a model: OPENAI_API_KEY is not set and the local model "
            f"({DISTRIBUTION}) is not installed. Install it with\n  {install_command()}\n"
            "and run the demo again; or set OPENAI_API_KEY; or run the demo with --scripted "
            "to play the model from a script."
        ) from None
    return LocalModelServer


def install_command(*, cwd: Path | None = None, module: Path | None = None) -> str:
    """The pip command that installs the local model into this very environment.

    From a clone (this backend installed from its `backends/durable`), the clone's `localmodel/`
    directory, as the README installs it; elsewhere the distribution by name.
    """
    cwd = Path.cwd() if cwd is None else cwd
    python = shell_path(Path(sys.executable), cwd)  # not resolved: a venv's python is a link
    source = _clone_source(Path(__file__) if module is None else module)
    if source is None:
        return f"{python} -m pip install {DISTRIBUTION}"
    return f"{python} -m pip install -e {shell_path(source, cwd)}"


def _clone_source(module: Path) -> Path | None:
    # <clone>/backends/durable/src/runplane_durable/demo/local_model.py
    parents = module.resolve().parents
    if len(parents) < 6 or (parents[4].name, parents[3].name) != ("backends", "durable"):
        return None
    source = parents[5] / "localmodel"
    return source if (source / "pyproject.toml").is_file() else None
