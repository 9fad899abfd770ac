"""Shared test setup: no trace export, ever (tests must not reach the network)."""

from __future__ import annotations

import os

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
