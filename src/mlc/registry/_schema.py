"""The registry's tables, in SQLAlchemy Core so SQLite and PostgreSQL share one schema."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 of the artifact bytes
    Column("format", String(32), nullable=False),
    Column("framework", String(32), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("signature", JSON, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("creator", String(200), nullable=False),
    Column("created_at", Float, nullable=False),  # unix time
    Column("source", JSON, nullable=False),  # {"kind": "file", ...} or {"kind": "optimize", "parent": ...}
    Column("git_commit", String(64)),
    Column("packages", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    UniqueConstraint("name", "version", name="uq_name_version"),
)

tags = Table(
    "tags",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"], ondelete="CASCADE"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"]),
)

reports = Table(
    "reports",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("filename", String(200), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"], ondelete="CASCADE"),
)

# A deployment records which versions of a name serve traffic and with what share; a version
# referenced by an active deployment cannot be deleted.
deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("spec", JSON, nullable=False),  # {"split": {"3": 90, "4": 10}, "settings": {...}}
    Column("created_at", Float, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
)

deployment_versions = Table(
    "deployment_versions",
    metadata,
    Column("deployment_id", Integer, primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("percent", Float, nullable=False),
    ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
)

# Every move of an alias made through mlc promote (and its rollback): who, when, why, from which
# version to which, and the comparison report it was decided on (a file among the new version's
# reports). Rows are only added, never changed: the history is an audit trail.
alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("version", Integer, nullable=False),  # the holder after the move
    Column("previous", Integer),  # the holder before it; None: the alias is new
    Column("action", String(32), nullable=False),  # "promote" or "rollback"
    Column("creator", String(200), nullable=False),
    Column("created_at", Float, nullable=False),  # unix time
    Column("message", Text, nullable=False, default=""),
    Column("report", String(200)),  # the comparison report's file name among `version`'s reports
    Column("criteria", JSON, nullable=False),  # each criterion as written, its values and result
)

# The event outbox (mlc/events/): one row per lifecycle change, inserted in the change's own
# transaction, so an event exists exactly when its change committed. `seq` orders them (writers
# hold the registry's write lock, so the order of seq is the order of commits).
events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),  # the CloudEvents id
    Column("type", String(100), nullable=False),  # mlc.model.registered, ...
    Column("subject", String(300), nullable=False),  # NAME:VERSION, or NAME for a deployment
    Column("source", String(300), nullable=False),
    Column("created_at", Float, nullable=False),  # unix time
    Column("actor", String(200), nullable=False),
    Column("data", JSON, nullable=False),
)

# Webhook subscriptions, and per hook and event the delivery state and every attempt made.
hooks = Table(
    "hooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("types", JSON, nullable=False),  # [] = every type
    Column("secret", Text),  # signs each body (HMAC-SHA256); None: unsigned
    Column("after_seq", Integer, nullable=False),  # events after this one are delivered
    Column("created_at", Float, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("hook_id", Integer, primary_key=True),
    Column("event_seq", Integer, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("next_at", Float, nullable=False),  # when a failed delivery is tried again
    Column("delivered_at", Float),  # None until a 2xx answer
    Column("last_status", Integer),
    Column("last_error", Text),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook_id", Integer, nullable=False),
    Column("event_seq", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status", Integer),  # the HTTP status; None when no answer came
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
)
