"""The one error the local model setup raises: every message says what to do next."""

from __future__ import annotations

from runplane import RunplaneError

__all__ = ["LocalModelError"]


class LocalModelError(RunplaneError):
    """Building, fetching or serving the local model failed in a way the user can fix.

    A subclass of RunplaneError so `runplane model ...` prints the message (no traceback)."""
