"""The versioned model registry: metadata rows in SQL, artifacts as content-addressed blobs.

Ordering that keeps it consistent under crashes: the blob is written (temp,
fsync, rename) before the row that names it is committed, so a killed process
can leave an unreferenced blob but never a row without its artifact. Version
numbers come from a unique (name, version) constraint inside a write
transaction, retried on conflict, so concurrent processes never share a number.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError

from mlc.config import load_settings
from mlc.errors import ConflictError, NotFoundError, UsageError
from mlc.events import outbox
from mlc.events import types as event
from mlc.files import atomic_write
from mlc.registry import _schema as s
from mlc.registry._engine import WRITE, create_engine, registry_url
from mlc.registry._migrations import ensure_schema
from mlc.registry._provenance import creator, git_commit, package_versions
from mlc.registry._refs import check_name, parse_ref
from mlc.registry._store import ArtifactStore, BlobStore
from mlc.registry.records import OPTIMIZE, Metrics, Source
from mlc.signature import Signature

if TYPE_CHECKING:
    from mlc.loading.model import LoadedModel
    from mlc.registry._serving import Served

_RETRIES = 50


@dataclass
class ModelVersion:
    name: str
    version: int
    digest: str
    format: str
    framework: str
    size_bytes: int
    signature: Signature
    description: str
    creator: str
    created_at: float
    source: Source  # lineage, read and checked once from the row (see records.py)
    git_commit: str | None
    packages: dict[str, str]
    metrics: Metrics
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "format": self.format,
            "framework": self.framework,
            "size_bytes": self.size_bytes,
            "signature": self.signature.to_dict(),
            "description": self.description,
            "creator": self.creator,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
            "source": self.source.to_dict(),
            "git_commit": self.git_commit,
            "packages": self.packages,
            "metrics": self.metrics.to_dict(),
            "tags": self.tags,
            "aliases": self.aliases,
            "reports": self.reports,
        }


class Registry:
    """Open with `Registry.open()` (settings from $MLC_HOME / $MLC_REGISTRY_URL) or `Registry(home)`."""

    def __init__(self, home: Path, url: str | None = None, store: ArtifactStore | None = None) -> None:
        """home holds the artifacts (unless `store` is another ArtifactStore) and report files;
        url the metadata database (default: SQLite in home)."""
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.store: ArtifactStore = store if store is not None else BlobStore(self.home / "blobs")
        self.url = url or f"sqlite:///{self.home / 'registry.db'}"
        self.engine = create_engine(self.url)
        self._create_schema()

    @classmethod
    def open(cls) -> Registry:
        settings = load_settings()
        return cls(settings.home, settings.registry_url)

    def _create_schema(self) -> None:
        """Create, or upgrade in place under the write lock, the registry's tables (_migrations)."""
        where = registry_url(self.url).render_as_string(hide_password=True)
        for attempt in range(_RETRIES):
            try:
                ensure_schema(self.engine, self._tx, where)
                return
            except OperationalError:
                # Another process is creating the same tables right now.
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction: the write lock from its first statement, committed at the end."""
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    # ---- writing -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        artifact: Path | bytes,
        *,
        format: str,
        framework: str,
        signature: Signature,
        tags: dict[str, str] | None = None,
        description: str = "",
        source: Source | Mapping[str, Any] | None = None,
        metrics: Metrics | Mapping[str, Any] | None = None,
        aliases: list[str] | tuple[str, ...] = (),
    ) -> ModelVersion:
        """Store the artifact and a new version row. A source or metrics given as a dict is checked
        as the records it will be read as, so a row that could not be read back is never written."""
        check_name(name)
        if not isinstance(source, Source):
            source = Source.from_dict(source or {"kind": "bytes"})
        if not isinstance(metrics, Metrics):
            metrics = Metrics.from_dict(metrics or {})
        for alias in aliases:
            self._check_alias(alias)
        data = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
        digest = self.store.put(data)  # durable before any row names it
        row = {
            "name": name,
            "digest": digest,
            "format": format,
            "framework": framework,
            "size_bytes": len(data),
            "signature": signature.to_dict(),
            "description": description,
            "creator": creator(),
            "created_at": time.time(),
            "source": source.to_dict(),
            "git_commit": git_commit(),
            "packages": package_versions(),
            "metrics": metrics.to_dict(),
        }
        for attempt in range(_RETRIES):
            try:
                with self._tx() as conn:
                    # Under the write lock: a delete of the last version using these bytes may
                    # have removed the blob since the put above (already hashed: only its presence).
                    self.store.ensure(data, digest)
                    current = conn.execute(
                        sa.select(sa.func.max(s.versions.c.version)).where(s.versions.c.name == name)
                    ).scalar()
                    version = (current or 0) + 1
                    conn.execute(s.versions.insert().values(version=version, **row))
                    for key, value in (tags or {}).items():
                        conn.execute(s.tags.insert().values(name=name, version=version, key=key, value=value))
                    kind = event.OPTIMIZED if source.kind == OPTIMIZE else event.REGISTERED
                    outbox.record(conn, kind, name, f"{name}:{version}", {
                        "name": name, "version": version, "digest": digest, "format": format,
                        "framework": framework, "source": source.to_dict(), "creator": row["creator"]})
                    for alias in aliases:
                        self._set_alias(conn, name, alias, version)
                break
            except (SAIntegrityError, OperationalError):
                # Another process took this version number (or held the lock too long): try the next.
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        # Read back outside the retry: a failed read must not insert the version a second time.
        return self.get(f"{name}:{version}")

    def set_tags(self, ref: str, tags: dict[str, str], remove: list[str] | tuple[str, ...] = ()) -> ModelVersion:
        mv = self.get(ref)
        with self._tx() as conn:
            for key in remove:
                conn.execute(s.tags.delete().where(
                    (s.tags.c.name == mv.name) & (s.tags.c.version == mv.version) & (s.tags.c.key == key)))
            for key, value in tags.items():
                conn.execute(s.tags.delete().where(
                    (s.tags.c.name == mv.name) & (s.tags.c.version == mv.version) & (s.tags.c.key == key)))
                conn.execute(s.tags.insert().values(name=mv.name, version=mv.version, key=key, value=value))
        return self.get(mv.ref)

    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        self._check_alias(alias)
        mv = self.get(ref)
        with self._tx() as conn:
            self._set_alias(conn, mv.name, alias, mv.version)
        return self.get(mv.ref)

    def remove_alias(self, name: str, alias: str) -> None:
        with self._tx() as conn:
            previous = conn.execute(sa.select(s.aliases.c.version).where(
                (s.aliases.c.name == name) & (s.aliases.c.alias == alias))).scalar()
            gone = conn.execute(s.aliases.delete().where(
                (s.aliases.c.name == name) & (s.aliases.c.alias == alias))).rowcount
            if gone:
                outbox.record(conn, event.ALIAS_MOVED, name, name,
                              {"name": name, "alias": alias, "version": None, "previous": previous})
        if not gone:
            raise NotFoundError(f"model {name} has no alias {alias!r}")

    def update_metrics(self, ref: str, metrics: Mapping[str, Any]) -> ModelVersion:
        """Set top-level metrics (e.g. {"profile": ProfileRecord(...).to_dict()}), keeping the others."""
        mv = self.get(ref)
        merged = Metrics.from_dict({**mv.metrics.to_dict(), **metrics}, f"metrics for {mv.ref}")
        with self._tx() as conn:
            conn.execute(s.versions.update().where(
                (s.versions.c.name == mv.name) & (s.versions.c.version == mv.version)).values(metrics=merged.to_dict()))
            if "profile" in metrics:
                outbox.record(conn, event.PROFILED, mv.name, mv.ref,
                              {"name": mv.name, "version": mv.version, "profile": merged.to_dict().get("profile")})
        return self.get(mv.ref)

    def attach_report(self, ref: str | ModelVersion, filename: str, content: str | bytes) -> Path:
        """Store a report file beside the version (models/NAME/VERSION/filename), atomically."""
        mv = ref if isinstance(ref, ModelVersion) else self.get(ref)
        if "/" in filename or filename.startswith("."):
            raise UsageError(f"invalid report file name {filename!r}")
        data = content.encode() if isinstance(content, str) else content
        dest = self.version_dir(mv) / filename
        atomic_write(dest, data)
        with self._tx() as conn:
            conn.execute(s.reports.delete().where(
                (s.reports.c.name == mv.name) & (s.reports.c.version == mv.version)
                & (s.reports.c.filename == filename)))
            conn.execute(s.reports.insert().values(
                name=mv.name, version=mv.version, filename=filename,
                digest=hashlib.sha256(data).hexdigest(), created_at=time.time()))
        return dest

    def record_deployment(self, name: str, split: dict[int, float], settings: dict[str, Any] | None = None) -> int:
        """Record that these versions of `name` serve traffic with these percentages."""
        total = sum(split.values())
        if abs(total - 100.0) > 1e-6:
            raise UsageError(f"traffic shares for {name} add up to {total:g}%, not 100%")
        for version in split:
            self.get(f"{name}:{version}")
        with self._tx() as conn:
            conn.execute(s.deployments.update().where(s.deployments.c.name == name).values(active=False))
            inserted = conn.execute(s.deployments.insert().values(
                name=name, spec={"split": {str(v): p for v, p in split.items()}, "settings": settings or {}},
                created_at=time.time(), active=True)).inserted_primary_key
            if inserted is None:  # SQLAlchemy returns the key of every single-row INSERT
                raise RuntimeError("internal error: the database returned no id for the new deployment")
            dep_id = inserted[0]
            for version, percent in split.items():
                conn.execute(s.deployment_versions.insert().values(
                    deployment_id=dep_id, name=name, version=version, percent=percent))
            outbox.record(conn, event.DEPLOYED, name, name, {
                "name": name, "deployment": int(dep_id), "split": {str(v): p for v, p in split.items()}})
        return int(dep_id)

    def end_deployment(self, name: str) -> None:
        with self._tx() as conn:
            ended = conn.execute(s.deployments.update().where(
                (s.deployments.c.name == name) & s.deployments.c.active).values(active=False)).rowcount
            if ended:
                outbox.record(conn, event.UNDEPLOYED, name, name, {"name": name})

    def active_deployment(self, name: str) -> dict[int, float] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.deployments.c.spec).where(
                (s.deployments.c.name == name) & s.deployments.c.active)).first()
        return {int(v): float(p) for v, p in row.spec["split"].items()} if row else None

    def delete(self, ref: str) -> ModelVersion:
        mv = self.get(ref)
        with self._tx() as conn:
            deployed = conn.execute(
                sa.select(s.deployments.c.id).select_from(s.deployments.join(
                    s.deployment_versions, s.deployments.c.id == s.deployment_versions.c.deployment_id))
                .where((s.deployment_versions.c.name == mv.name)
                       & (s.deployment_versions.c.version == mv.version) & s.deployments.c.active)
            ).first()
            if deployed:
                raise ConflictError(
                    f"cannot delete {mv.ref}: the recorded deployment #{deployed.id} of {mv.name} serves it",
                    f"move its traffic to another version (mlc serve --split) or end the deployment: "
                    f"mlc models undeploy {mv.name}",
                )
            pointing = conn.execute(sa.select(s.aliases.c.alias).where(
                (s.aliases.c.name == mv.name) & (s.aliases.c.version == mv.version))).scalars().all()
            if pointing:
                names = ", ".join(f"@{a}" for a in pointing)
                raise ConflictError(
                    f"cannot delete {mv.ref}: alias {names} points at it",
                    f"point the alias at another version first: mlc models alias {mv.name}:N {pointing[0]}",
                )
            where = (s.versions.c.name == mv.name) & (s.versions.c.version == mv.version)
            conn.execute(s.tags.delete().where((s.tags.c.name == mv.name) & (s.tags.c.version == mv.version)))
            conn.execute(s.reports.delete().where(
                (s.reports.c.name == mv.name) & (s.reports.c.version == mv.version)))
            conn.execute(s.versions.delete().where(where))
            outbox.record(conn, event.DELETED, mv.name, mv.ref,
                          {"name": mv.name, "version": mv.version, "digest": mv.digest})
        # The blob goes only after the row's delete committed (removed inside the transaction, a
        # crash before COMMIT rolled the row back and left it without its artifact), in a write
        # transaction of its own, so no register can be naming these bytes meanwhile.
        with self._tx() as conn:
            still_used = conn.execute(sa.select(s.versions.c.id).where(s.versions.c.digest == mv.digest)).first()
            if not still_used:
                self.store.remove(mv.digest)
        shutil.rmtree(self.version_dir(mv), ignore_errors=True)
        return mv

    def register_file(self, model: str | Path | LoadedModel, name: str | None = None, *, trust: bool = False,
                      tags: dict[str, str] | None = None, description: str = "", aliases: tuple[str, ...] = (),
                      reuse: bool = False) -> ModelVersion:
        """Register a model file (loaded safely first) or a loaded model; see _files.register_file."""
        from mlc.registry._files import register_file

        return register_file(self, model, name, trust=trust, tags=tags, description=description, aliases=aliases,
                             reuse=reuse)

    # ---- reading -------------------------------------------------------------------------

    def served(self, ref: str | ModelVersion) -> Served:
        """The version `ref` serves (itself when ONNX, else its newest optimized child); see _serving."""
        from mlc.registry._serving import served

        return served(self, ref if isinstance(ref, ModelVersion) else self.get(ref))

    def get(self, ref: str) -> ModelVersion:
        parsed = parse_ref(ref)
        with self.engine.connect() as conn:
            version = parsed.version
            if parsed.alias is not None:
                version = conn.execute(sa.select(s.aliases.c.version).where(
                    (s.aliases.c.name == parsed.name) & (s.aliases.c.alias == parsed.alias))).scalar()
                if version is None:
                    raise NotFoundError(f"model {parsed.name} has no alias @{parsed.alias}",
                                        f"see its versions with: mlc models show {parsed.name}")
            elif version is None:
                version = conn.execute(sa.select(sa.func.max(s.versions.c.version)).where(
                    s.versions.c.name == parsed.name)).scalar()
            row = None if version is None else conn.execute(sa.select(s.versions).where(
                (s.versions.c.name == parsed.name) & (s.versions.c.version == version))).first()
            if row is None:
                what = f"{parsed.name}:{version}" if version is not None else parsed.name
                raise NotFoundError(f"no model {what} in the registry at {self.home}",
                                    "list what is there with: mlc models list")
            return self._hydrate(conn, row)

    def list(self, name: str | None = None, tags: dict[str, str] | None = None) -> list[ModelVersion]:
        query = sa.select(s.versions).order_by(s.versions.c.name, s.versions.c.version)
        if name:
            query = query.where(s.versions.c.name == name)
        for key, value in (tags or {}).items():
            query = query.where(sa.exists().where(
                (s.tags.c.name == s.versions.c.name) & (s.tags.c.version == s.versions.c.version)
                & (s.tags.c.key == key) & (s.tags.c.value == value)))
        with self.engine.connect() as conn:
            return [self._hydrate(conn, row) for row in conn.execute(query)]

    def artifact_path(self, ref: str | ModelVersion) -> Path:
        """The artifact's path after re-hashing it: a corrupted blob raises IntegrityError."""
        mv = ref if isinstance(ref, ModelVersion) else self.get(ref)
        return self.store.verified_path(mv.digest)

    def load(self, ref: str | ModelVersion, *, trust: bool = False) -> Any:
        """The version's model, loaded through the same safe loaders as a file."""
        from mlc.loading import load_model

        mv = ref if isinstance(ref, ModelVersion) else self.get(ref)
        return load_model(self.artifact_path(mv), trust=trust, format=mv.format)

    def export(self, ref: str, dest: Path | str) -> Path:
        """Copy the verified artifact to dest: a file, or a folder (existing, or named with a
        trailing slash) to write NAME-VERSION.ext into."""
        mv = self.get(ref)
        src = self.artifact_path(mv)
        folder = str(dest).endswith(("/", os.sep))
        dest = Path(dest)
        if folder or dest.is_dir():
            dest = dest / f"{mv.name}-{mv.version}{_EXTENSIONS.get(mv.format, '')}"
        atomic_write(dest, src.read_bytes())
        return dest

    def version_dir(self, mv: ModelVersion) -> Path:
        return self.home / "models" / mv.name / str(mv.version)

    def _check_alias(self, alias: str) -> None:
        check_name(alias, "alias")
        if alias.isdigit():
            raise UsageError(f"alias {alias!r} is a number", "aliases must not look like versions")

    @staticmethod
    def _set_alias(conn: Connection, name: str, alias: str, version: int) -> None:
        """Point the alias at the version, with its event (every alias move goes through here)."""
        previous = conn.execute(sa.select(s.aliases.c.version).where(
            (s.aliases.c.name == name) & (s.aliases.c.alias == alias))).scalar()
        conn.execute(s.aliases.delete().where((s.aliases.c.name == name) & (s.aliases.c.alias == alias)))
        conn.execute(s.aliases.insert().values(name=name, alias=alias, version=version))
        if previous != version:
            outbox.record(conn, event.ALIAS_MOVED, name, f"{name}:{version}",
                          {"name": name, "alias": alias, "version": version, "previous": previous})

    def _hydrate(self, conn: Connection, row: Any) -> ModelVersion:
        key = (s.tags.c.name == row.name) & (s.tags.c.version == row.version)
        tag_rows = conn.execute(sa.select(s.tags.c.key, s.tags.c.value).where(key)).all()
        alias_rows = conn.execute(sa.select(s.aliases.c.alias).where(
            (s.aliases.c.name == row.name) & (s.aliases.c.version == row.version))).scalars().all()
        report_rows = conn.execute(sa.select(s.reports.c.filename).where(
            (s.reports.c.name == row.name) & (s.reports.c.version == row.version))).scalars().all()
        ref = f"{row.name}:{row.version}"
        return ModelVersion(
            name=row.name, version=row.version, digest=row.digest, format=row.format,
            framework=row.framework, size_bytes=row.size_bytes,
            signature=Signature.from_dict(row.signature), description=row.description,
            creator=row.creator, created_at=row.created_at, source=Source.from_dict(row.source, f"{ref}'s source"),
            git_commit=row.git_commit, packages=row.packages,
            metrics=Metrics.from_dict(row.metrics, f"{ref}'s metrics"),
            tags=dict(tag_rows), aliases=sorted(alias_rows), reports=sorted(report_rows),
        )


_EXTENSIONS = {
    "pickle": ".pkl", "joblib": ".joblib", "skops": ".skops", "onnx": ".onnx",
    "xgboost-json": ".json", "xgboost-ubj": ".ubj", "lightgbm-text": ".txt",
}
