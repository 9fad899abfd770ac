"""The chat template shipped with runplane that makes the small model's tool calls come back as
proper `tool_calls` (see the comment at the top of qwen_tools.jinja for why it looks as it does)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

from .cache import cache_dir

__all__ = ["TEMPLATE_NAME", "template_path", "template_text"]

TEMPLATE_NAME = "qwen_tools.jinja"


def template_text() -> str:
    """The template source, read from the installed package data."""
    return resources.files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")


def template_path(cache: Path | None = None) -> Path:
    """A real file llama-server can read: the package file itself when installed as files, else
    (zip imports) a copy in the cache directory named by its content hash."""
    resource = resources.files(__package__).joinpath(TEMPLATE_NAME)
    if isinstance(resource, Path) and resource.is_file():
        return resource
    text = template_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    target = (cache or cache_dir()) / "templates" / f"{digest}-{TEMPLATE_NAME}"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".staging-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, target)
    return target
