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
