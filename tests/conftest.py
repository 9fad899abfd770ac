"""Shared test setup: no trace export, ever (tests must not reach the network)."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

# `server` and `api`: the scripted OpenAI-compatible server, for the core and openai tests alike.
pytest_plugins = ["support.endpoint_fixtures"]

# Durable runs made through the registry's shared `durable` backend go to a throwaway database,
# never to a .runplane/ directory inside the repository; in server mode (RUNPLANE_SERVER_URL,
# `nox -s server_mode`), to the server, and setting a database too would be refused as ambiguous.
if not os.environ.get("RUNPLANE_SERVER_URL"):
    os.environ.setdefault(
        "RUNPLANE_DATABASE_URL",
        os.path.join(tempfile.mkdtemp(prefix="runplane-tests-"), "runplane.db"),
    )
