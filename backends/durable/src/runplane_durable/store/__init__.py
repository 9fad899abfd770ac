"""Storage: one SQLAlchemy Core schema and code path for SQLite and PostgreSQL."""
