"""The private SDK names the core relies on, in one place (the SDK is pinned ~=0.24.0).

`agents.Runner.run`/`run_sync` never let an error marked "data redacted" carry the run's input in
its traceback; runner classes that stand in for `agents.Runner` must do the same.
"""

from __future__ import annotations

from agents.exceptions import (
    _detach_data_redacted_error_traceback as detach_redacted_traceback,
)
from agents.exceptions import (
    _is_error_data_redacted as is_data_redacted,
)
from agents.exceptions import (
    _raise_data_redacted_error as raise_redacted,
)

__all__ = ["detach_redacted_traceback", "is_data_redacted", "raise_redacted"]
