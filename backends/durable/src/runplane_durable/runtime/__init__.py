"""The runtime: the only code touching the SDK loop (journaling, run scope and ids, backend)."""
