"""The versioned schema. Bump SCHEMA_VERSION with every change and add its migration to
MIGRATIONS (run by `sql.create_schema`, in order, under the schema lock)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 4

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
    # v2: a stop asked for from any process ("immediate" or "after_turn"), seen by its holder.
    Column("cancel_requested", String(16)),
    # v2: the agent as an import reference ("pkg.module:attr"), so a worker can rebuild it.
    Column("agent_ref", String(500)),
    # v2: the worker queue a started run waits on (status "queued") or was started from.
    Column("queue", String(200)),
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

# v2: remote tool calls, executed by workers: claimed under a lease, retried with backoff.
tasks = Table(
    "runplane_tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("run_id", String(200), nullable=False),
    Column("call_key", String(300), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("tool_name", String(500), nullable=False),
    Column("call_id", String(300), nullable=False),
    Column("arguments", Text, nullable=False),
    Column("context", Text),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    # Seconds one attempt may take (null: no limit), and the first retry's delay (doubled after).
    Column("timeout", Float),
    Column("retry_delay", Float, nullable=False),
    Column("owner", String(300)),
    Column("lease_expires_at", Float),
    Column("available_at", Float, nullable=False),
    Column("result", Text),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("run_id", "call_key"),
    Index("ix_runplane_tasks_claim", "queue", "status", "available_at"),
)

# v3: the secrets of this database, created once with its schema (`sql.create_schema`): "seal"
# is the HMAC key sealing the approval snapshots and decisions. It never leaves the engine.
keys = Table(
    "runplane_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

# v3: the state a run stopped in to wait for approval (the SDK's RunState JSON), its last one:
# what it resumes from. `seal` is the HMAC of the run id, `model_calls`, the state and the calls
# it waits on, under the "seal" key.
run_states = Table(
    "runplane_run_states",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("state", Text, nullable=False),
    Column("model_calls", Integer, nullable=False),
    Column("calls", Text, nullable=False),  # the call ids it waits on, a JSON list
    Column("seal", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

# v3: the calls a run waited on, and their decisions (each sealed as it is written).
approvals = Table(
    "runplane_approvals",
    metadata,
    Column("run_id", String(200), nullable=False),
    Column("call_id", String(300), nullable=False),
    Column("position", Integer, nullable=False),
    Column("tool_name", String(500), nullable=False),
    Column("arguments", Text, nullable=False),
    Column("agent_name", String(500), nullable=False),
    Column("key", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("always", Boolean, nullable=False, default=False),
    Column("message", Text),
    Column("requested_at", Float, nullable=False),
    Column("decided_at", Float),
    Column("decided_by", String(300)),
    Column("policy", String(300)),
    Column("seal", String(64)),
    PrimaryKeyConstraint("run_id", "call_id"),
)

# v4: durable sessions (`runplane_durable.DurableSession`): a conversation's items, in order.
session_items = Table(
    "runplane_session_items",
    metadata,
    Column("session_id", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("item", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("session_id", "position"),
)

# v4: the keys of the writes a session took: a write sent again under its key (a retried
# request, a resumed run's last write) is recognised and writes nothing.
session_writes = Table(
    "runplane_session_writes",
    metadata,
    Column("session_id", String(200), nullable=False),
    Column("write_key", String(300), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("session_id", "write_key"),
)

# The statements that bring a database of version N - 1 to version N; tables new in N are made
# by `metadata.create_all` afterwards. Plain ALTERs that both SQLite and PostgreSQL take.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE runplane_runs ADD COLUMN cancel_requested VARCHAR(16)",
        "ALTER TABLE runplane_runs ADD COLUMN agent_ref VARCHAR(500)",
        "ALTER TABLE runplane_runs ADD COLUMN queue VARCHAR(200)",
    ),
}
