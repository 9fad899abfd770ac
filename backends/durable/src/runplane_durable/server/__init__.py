"""`runplane server`: a Starlette app over an engine (JSON API, events over SSE); never imports
the runtime, so it serves runs without running any agent."""
