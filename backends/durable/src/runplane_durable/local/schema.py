"""The versioned schema. Bump SCHEMA_VERSION with every change and add its migration."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 1

metadata = MetaData()

schema_info = Table(
    "runplane_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

runs = Table(
    "runplane_runs",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("agent_name", String(500), nullable=False),
    Column("status", String(32), nullable=False, index=True),
    Column("input", Text, nullable=False),
    Column("input_fingerprint", String(64), nullable=False),
    Column("options", Text, nullable=False),
    Column("created_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("owner", String(300)),
    Column("lease_expires_at", Float),
    Column("model_calls", Integer, nullable=False, default=0),
    Column("tool_calls", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("total_tokens", Integer, nullable=False, default=0),
    Column("final_output", Text),
    Column("error_type", String(300)),
    Column("error", Text),
)

# Every non-deterministic step, in order: what a replay returns instead of calling out again.
journal = Table(
    "runplane_journal",
    metadata,
    Column("run_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", String(300), nullable=False),
    Column("fingerprint", String(64)),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "seq"),
    UniqueConstraint("run_id", "kind", "key"),
)

# What happened, for people and watchers: steps, usage, lifecycle. Never read by a replay.
events = Table(
    "runplane_events",
    metadata,
    Column("run_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "seq"),
)
