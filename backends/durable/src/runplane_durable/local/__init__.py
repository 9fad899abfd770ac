"""The local engine: `LocalEngine` (engine.py) on a SQLite or PostgreSQL database it opens."""
