"""Keep the project's own pytest run out of this directory.

run.py and swap_plugin.py drive the SDK's test suite in subprocesses; collecting them here would
import the plugin (and swap `agents.Runner`) inside the project's own test session.
"""

from __future__ import annotations

collect_ignore_glob = ["*"]
