"""The manager's storage: one SQLite file under the data dir, with versioned migrations.

Stdlib ``sqlite3`` rather than an ORM: the schema is a handful of tables, the
manager is the only writer, and the queries are simple; a dependency would buy
nothing. One connection is shared under a lock (the API and the update runner
live in one process), in WAL mode so a reader never waits for the runner.

Answers are encrypted with Fernet before they reach SQL (see :mod:`.crypto`),
so the database file holds no plaintext answer. Everything the runner needs to
resume after a crash (the update queue, each service's recorded state, the
manifest and the answers) is written here before it acts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from cryptography.fernet import Fernet
from pydantic import BaseModel, ConfigDict, Field

from mora_dsl.manifest import Manifest

from .crypto import load_fernet

DB_FILE = "manager.sqlite3"

T = TypeVar("T")

#: Ordered migrations; the schema version is the number applied. Never edit a released one.
MIGRATIONS: list[str] = [
    # 1: the core tables
    """
    CREATE TABLE manifests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at TEXT NOT NULL,
        project TEXT NOT NULL,
        manifest TEXT NOT NULL,
        params TEXT NOT NULL,
        changes TEXT NOT NULL
    );
    CREATE TABLE answers (
        input_id TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE service_states (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('deploying', 'running', 'failed')),
        error TEXT,
        last_update_id INTEGER,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
        triggers TEXT NOT NULL,
        changes TEXT NOT NULL,
        deploy TEXT NOT NULL DEFAULT '[]',
        resume INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX updates_status ON updates (status);
    CREATE TABLE micromanagers (
        service TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        registered_at TEXT NOT NULL
    );
    CREATE TABLE credentials (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: the manifest actually deployed (with held/removed services) and pending removals
    """
    ALTER TABLE manifests ADD COLUMN effective TEXT;
    CREATE TABLE removals (
        service TEXT PRIMARY KEY,
        requested_at TEXT NOT NULL,
        confirmed_at TEXT
    );
    """,
    # 3: admin sessions, server-side (only a hash of the cookie's id is kept)
    """
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    """,
    # 4: rotation stamps of generated secrets (kept for good: dropping one would regenerate it)
    """
    CREATE TABLE secret_rotations (
        secret_id TEXT PRIMARY KEY,
        stamp TEXT NOT NULL,
        rotated_at TEXT NOT NULL
    );
    """,
    # 5: a removal's first step (claims released) and what the last good update applied
    """
    ALTER TABLE removals ADD COLUMN released_at TEXT;
    CREATE TABLE applied (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        update_id INTEGER NOT NULL,
        snapshot TEXT NOT NULL,
        applied_at TEXT NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

UpdateStatus = Literal["queued", "running", "succeeded", "failed", "interrupted"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class UpdateRecord(BaseModel):
    """One stack update: why it ran (triggers), what changed, how it ended."""

    model_config = ConfigDict(frozen=True)

    id: int
    status: UpdateStatus
    triggers: list[str]
    changes: list[str]
    #: The services it deployed (set when it starts).
    deploy: list[str] = Field(default_factory=list)
    #: A resume after the manager stopped mid-update: refresh first, then update.
    resume: bool = False
    attempts: int = 0
    error: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


class ServiceRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    state: Literal["deploying", "running", "failed"]
    error: str | None = None
    last_update_id: int | None = None
    updated_at: str


class ManifestRecord(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: int
    received_at: str
    manifest: Manifest
    params: dict[str, Any]
    changes: list[str]
    effective: Manifest | None = None


class Store:
    """The manager's database. Open it with :meth:`open`; every method is thread-safe."""

    def __init__(self, conn: sqlite3.Connection, fernet: Fernet, path: Path) -> None:
        self._conn = conn
        self._fernet = fernet
        self._lock = threading.RLock()
        self.path = path
        #: Bumped by every write to ``manifests``; the parsed latest manifest is cached per
        #: generation (parsing the media server's JSON costs ~0.7 ms, and every request of
        #: the API and the pages reads it). Sound because this process is the only writer.
        self._generation = 0
        self._latest: tuple[int, ManifestRecord | None] | None = None
        #: Bumped by every transaction (any table, the micromanagers' included): what is
        #: derived from the database alone is cached per version (:meth:`memo`).
        self._version = 0
        self._memo: dict[Hashable, Any] = {}
        self._memo_version = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, data_dir: Path) -> Store:
        """Open (creating if needed) the store in ``data_dir`` and apply pending migrations."""
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = data_dir / DB_FILE
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        path.chmod(0o600)
        store = cls(conn, load_fernet(data_dir), path)
        store.migrate()
        return store

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._version += 1
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args))

    @property
    def version(self) -> int:
        """Changes with every write; equal versions mean equal database contents."""
        return self._version

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, cached until the next write to the database.

        For values derived from the database alone (the plan, a page's context); sound
        because this process is the only writer. ``compute`` runs outside the lock, and
        its result is kept only if no write happened meanwhile. Exceptions are not cached.
        """
        with self._lock:
            if self._memo_version != self._version:
                self._memo.clear()
                self._memo_version = self._version
            if key in self._memo:
                return self._memo[key]  # type: ignore[no-any-return]
            version = self._version
        value = compute()
        with self._lock:
            if self._version == version == self._memo_version:
                self._memo[key] = value
        return value

    def schema_version(self) -> int:
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            return int(row[0] or 0)

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the migrations after the current version up to ``target``, each in a transaction."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the manager's database ({self.path}) has schema version {current}, newer than "
                f"this mora ({SCHEMA_VERSION}); upgrade mora or point --data at another folder"
            )
        for version in range(current + 1, target + 1):
            statements = [s.strip() for s in MIGRATIONS[version - 1].split(";") if s.strip()]
            with self._tx() as conn:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        return self.schema_version()

    # ------------------------------------------------------------------ manifests

    def add_manifest(
        self, manifest: Manifest, params: dict[str, Any], changes: list[str]
    ) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO manifests (received_at, project, manifest, params, changes)"
                " VALUES (?, ?, ?, ?, ?)",
                (now(), manifest.project.name, manifest.model_dump_json(),
                 json.dumps(params, sort_keys=True), json.dumps(changes)),
            )
            self._generation += 1
            return int(cur.lastrowid or 0)

    def set_effective(self, manifest_id: int, effective: Manifest) -> None:
        """Record the manifest an update actually deployed (with held and removed services)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE manifests SET effective = ? WHERE id = ?",
                (effective.model_dump_json(), manifest_id),
            )
            self._generation += 1

    def latest_manifest(self) -> ManifestRecord | None:
        """The newest manifest record (cached until the next write to ``manifests``)."""
        with self._lock:
            if self._latest is not None and self._latest[0] == self._generation:
                return self._latest[1]
            generation = self._generation
            rows = self._query("SELECT * FROM manifests ORDER BY id DESC LIMIT 1")
            record = self._manifest_record(rows[0]) if rows else None
            self._latest = (generation, record)
            return record

    def last_effective(self) -> Manifest | None:
        """The manifest the last update deployed, if any."""
        rows = self._query(
            "SELECT effective FROM manifests WHERE effective IS NOT NULL ORDER BY id DESC LIMIT 1"
        )
        return Manifest.model_validate_json(rows[0]["effective"]) if rows else None

    @staticmethod
    def _manifest_record(row: sqlite3.Row) -> ManifestRecord:
        return ManifestRecord(
            id=row["id"],
            received_at=row["received_at"],
            manifest=Manifest.model_validate_json(row["manifest"]),
            params=json.loads(row["params"]),
            changes=json.loads(row["changes"]),
            effective=Manifest.model_validate_json(row["effective"]) if row["effective"] else None,
        )

    # ------------------------------------------------------------------ answers

    def set_answer(self, input_id: str, value: str) -> None:
        token = self._fernet.encrypt(value.encode())
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO answers (input_id, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (input_id) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (input_id, token, now()),
            )

    def answer(self, input_id: str) -> str | None:
        rows = self._query("SELECT value FROM answers WHERE input_id = ?", (input_id,))
        return self._fernet.decrypt(rows[0]["value"]).decode() if rows else None

    def answers(self) -> dict[str, str]:
        """Every answer, decrypted. Callers keep them out of logs and responses."""
        rows = self._query("SELECT input_id, value FROM answers ORDER BY input_id")
        return {r["input_id"]: self._fernet.decrypt(r["value"]).decode() for r in rows}

    def answered(self) -> dict[str, str]:
        """Answered input ids → when they were last answered (no values)."""
        rows = self._query("SELECT input_id, updated_at FROM answers ORDER BY input_id")
        return {r["input_id"]: r["updated_at"] for r in rows}

    # ------------------------------------------------------------------ service states

    def set_states(
        self,
        states: dict[str, str],
        *,
        update_id: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record runtime states (``deploying``/``running``/``failed``) for several services."""
        with self._tx() as conn:
            for name, state in states.items():
                conn.execute(
                    "INSERT INTO service_states (name, state, error, last_update_id, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                    " state = excluded.state, error = excluded.error,"
                    " last_update_id = COALESCE(excluded.last_update_id, last_update_id),"
                    " updated_at = excluded.updated_at",
                    (name, state, error if state == "failed" else None, update_id, now()),
                )

    def forget_service(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM service_states WHERE name = ?", (name,))

    def forget_services(self) -> None:
        """Forget every service's state (the stack was destroyed: nothing is deployed)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM service_states")

    def service_records(self) -> dict[str, ServiceRecord]:
        rows = self._query("SELECT * FROM service_states ORDER BY name")
        return {r["name"]: ServiceRecord(**dict(r)) for r in rows}

    def states(self) -> dict[str, str]:
        return {name: rec.state for name, rec in self.service_records().items()}

    # ------------------------------------------------------------------ removals

    def request_removals(self, services: list[str]) -> None:
        """Removals awaiting the admin; one already under way (claims released) goes on."""
        with self._tx() as conn:
            for name in services:
                conn.execute(
                    "INSERT INTO removals (service, requested_at) VALUES (?, ?)"
                    " ON CONFLICT (service) DO UPDATE SET confirmed_at = NULL"
                    " WHERE released_at IS NULL",
                    (name, now()),
                )

    def cancel_removal(self, service: str) -> bool:
        """Forget a removal (the service is back); whether its objects were already dropped."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT released_at FROM removals WHERE service = ?", (service,)
            ).fetchone()
            conn.execute("DELETE FROM removals WHERE service = ?", (service,))
        return row is not None and row["released_at"] is not None

    def confirm_removal(self, service: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE removals SET confirmed_at = ? WHERE service = ? AND confirmed_at IS NULL",
                (now(), service),
            )
            return cur.rowcount > 0

    def removals(self, *, confirmed: bool = False) -> list[str]:
        cond = "IS NOT NULL" if confirmed else "IS NULL"
        rows = self._query(f"SELECT service FROM removals WHERE confirmed_at {cond} ORDER BY service")
        return [r["service"] for r in rows]

    def released(self) -> list[str]:
        """Confirmed removals whose first step is done: claims unprotected, objects gone.

        The next update drops them from the stack (see :attr:`stacks.config.StackConfig.released`).
        """
        rows = self._query(
            "SELECT service FROM removals WHERE released_at IS NOT NULL ORDER BY service"
        )
        return [r["service"] for r in rows]

    def mark_released(self, service: str) -> None:
        """The update with ``service`` released succeeded (the removal's first step)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE removals SET released_at = ? WHERE service = ? AND confirmed_at IS NOT NULL",
                (now(), service),
            )

    def finish_removal(self, service: str) -> None:
        """The confirmed removal was deployed: forget the service (its volumes stay)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM removals WHERE service = ?", (service,))
            conn.execute("DELETE FROM service_states WHERE name = ?", (service,))

    # ------------------------------------------------------------------ updates

    def enqueue_update(self, trigger: str, changes: list[str] | None = None) -> int:
        """Queue an update, or fold the trigger into the one already queued (coalescing)."""
        changes = changes or []
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id, triggers, changes FROM updates WHERE status = 'queued'"
                " ORDER BY id LIMIT 1"
            ).fetchone()
            if row is not None:
                triggers = json.loads(row["triggers"])
                if trigger not in triggers:
                    triggers.append(trigger)
                merged = json.loads(row["changes"])
                merged += [c for c in changes if c not in merged]
                conn.execute(
                    "UPDATE updates SET triggers = ?, changes = ? WHERE id = ?",
                    (json.dumps(triggers), json.dumps(merged), row["id"]),
                )
                return int(row["id"])
            cur = conn.execute(
                "INSERT INTO updates (status, triggers, changes, created_at)"
                " VALUES ('queued', ?, ?, ?)",
                (json.dumps([trigger]), json.dumps(changes), now()),
            )
            return int(cur.lastrowid or 0)

    def next_queued(self) -> UpdateRecord | None:
        rows = self._query("SELECT * FROM updates WHERE status = 'queued' ORDER BY id LIMIT 1")
        return self._update(rows[0]) if rows else None

    def start_update(self, update_id: int, deploy: list[str]) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE updates SET status = 'running', started_at = ?, deploy = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                (now(), json.dumps(sorted(deploy)), update_id),
            )

    def count_attempt(self, update_id: int) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE updates SET attempts = attempts + 1 WHERE id = ?", (update_id,))

    def finish_update(
        self, update_id: int, status: UpdateStatus, error: str | None = None
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE updates SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (status, error, now(), update_id),
            )

    def cancel_queued(self, reason: str) -> list[int]:
        """Mark every queued update ``failed`` with ``reason``; returns their ids."""
        with self._tx() as conn:
            ids = [int(r["id"]) for r in conn.execute(
                "SELECT id FROM updates WHERE status = 'queued' ORDER BY id")]
            conn.execute(
                "UPDATE updates SET status = 'failed', error = ?, finished_at = ?"
                " WHERE status = 'queued'",
                (reason, now()),
            )
        return ids

    def interrupted_updates(self) -> list[UpdateRecord]:
        """Updates left ``running`` by a manager that stopped; marks them ``interrupted``."""
        with self._tx() as conn:
            rows = list(conn.execute("SELECT * FROM updates WHERE status = 'running'"))
            conn.execute(
                "UPDATE updates SET status = 'interrupted', finished_at = ?,"
                " error = 'the manager stopped during this update' WHERE status = 'running'",
                (now(),),
            )
        return [self._update(r) for r in rows]

    def mark_resume(self, update_id: int) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE updates SET resume = 1 WHERE id = ?", (update_id,))

    def update(self, update_id: int) -> UpdateRecord | None:
        rows = self._query("SELECT * FROM updates WHERE id = ?", (update_id,))
        return self._update(rows[0]) if rows else None

    def updates(self, limit: int = 50) -> list[UpdateRecord]:
        rows = self._query("SELECT * FROM updates ORDER BY id DESC LIMIT ?", (limit,))
        return [self._update(r) for r in rows]

    @staticmethod
    def _update(row: sqlite3.Row) -> UpdateRecord:
        data = dict(row)
        for key in ("triggers", "changes", "deploy"):
            data[key] = json.loads(data[key])
        data["resume"] = bool(data["resume"])
        return UpdateRecord(**data)

    def applied(self) -> dict[str, Any] | None:
        """What the last successful update applied (answer stamps, params, rotations)."""
        rows = self._query("SELECT snapshot FROM applied WHERE id = 1")
        return dict(json.loads(rows[0]["snapshot"])) if rows else None

    def set_applied(self, update_id: int, snapshot: dict[str, Any]) -> None:
        """Record what ``update_id`` applied; holds no answer, only when each was given."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO applied (id, update_id, snapshot, applied_at) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET update_id = excluded.update_id,"
                " snapshot = excluded.snapshot, applied_at = excluded.applied_at",
                (update_id, json.dumps(snapshot, sort_keys=True, default=str), now()),
            )

    # ------------------------------------------------------------------ credentials and sessions

    def credential(self, name: str) -> str | None:
        def read() -> str | None:
            rows = self._query("SELECT hash FROM credentials WHERE name = ?", (name,))
            return rows[0]["hash"] if rows else None

        # Read on every request (the API token's hash): cached until the next write.
        return self.memo(("credential", name), read)

    def set_credential(self, name: str, hashed: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO credentials (name, hash, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash,"
                " updated_at = excluded.updated_at",
                (name, hashed, now()),
            )

    def add_session(self, id_hash: str, csrf: str, expires_at: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now(),))
            conn.execute(
                "INSERT INTO sessions (id_hash, csrf, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (id_hash, csrf, now(), expires_at),
            )

    def session(self, id_hash: str) -> tuple[str, str] | None:
        """``(csrf token, expires_at)`` of a live session.

        Read on every page: a known session is cached until the next write (an unknown
        id is not, so random cookies cannot fill memory); expiry is checked every time.
        """
        key = ("session", id_hash)
        with self._lock:
            found = self._memo.get(key) if self._memo_version == self._version else None
        if found is None:
            rows = self._query(
                "SELECT csrf, expires_at FROM sessions WHERE id_hash = ?", (id_hash,)
            )
            if not rows:
                return None
            found = self.memo(key, lambda: (rows[0]["csrf"], rows[0]["expires_at"]))
        return found if found[1] > now() else None

    def delete_session(self, id_hash: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))

    # ------------------------------------------------------------------ secret rotations

    def rotate_secret(self, secret_id: str) -> str:
        """Give ``secret_id`` a new rotation stamp (the stack regenerates it); returns the stamp."""
        import secrets as _secrets

        stamp = f"{now()}-{_secrets.token_hex(4)}"
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO secret_rotations (secret_id, stamp, rotated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (secret_id) DO UPDATE SET stamp = excluded.stamp,"
                " rotated_at = excluded.rotated_at",
                (secret_id, stamp, now()),
            )
        return stamp

    def rotations(self) -> dict[str, str]:
        """Secret id → rotation stamp, for :attr:`stacks.config.StackConfig.rotate`."""
        rows = self._query("SELECT secret_id, stamp FROM secret_rotations ORDER BY secret_id")
        return {r["secret_id"]: r["stamp"] for r in rows}

    def rotated_at(self) -> dict[str, str]:
        """Secret id → when it was last rotated."""
        rows = self._query("SELECT secret_id, rotated_at FROM secret_rotations")
        return {r["secret_id"]: r["rotated_at"] for r in rows}
