"""localvault.store: the vault's keys on disk, in SQLite, private material encrypted at rest.

Owns the schema, transactions and the at-rest encryption (AES-GCM under the state dir's master
key). Never decides what a request may do, and never returns ciphertext in place of a key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    deleted REAL,
    purge_at REAL
);
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL COLLATE NOCASE REFERENCES names(name),
    version TEXT NOT NULL,
    record TEXT NOT NULL,
    secret BLOB NOT NULL,
    UNIQUE (name, version)
);
"""

RETENTION_DAYS = 90


@dataclass(frozen=True)
class KeyRecord:
    """One key version's public description: everything but the private material."""

    name: str
    version: str
    kty: str
    key_ops: list[str]
    public: dict[str, Any]
    created: int
    updated: int
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    exportable: bool | None = None
    tags: dict[str, str] | None = None
    release_policy: dict[str, Any] | None = None

    def to_json(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k not in ("name", "version")}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_row(cls, name: str, version: str, record: str) -> KeyRecord:
        return cls(name=name, version=version, **json.loads(record))

    def with_changes(self, **changes: Any) -> KeyRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class DeletedInfo:
    """When a key was soft-deleted and when it would be purged."""

    deleted: int
    purge_at: int


class Store:
    """Thread-safe access to the vault's SQLite file; one connection per thread, WAL mode."""

    def __init__(self, path: Path, master_key: bytes) -> None:
        self._path = path
        self._seal = AESGCM(master_key)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed whole or rolled back whole."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # -- metadata -------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))

    # -- sealing --------------------------------------------------------------------------------

    def _seal_secret(self, record: KeyRecord, secret: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._seal.encrypt(nonce, secret, f"{record.name}/{record.version}".encode())

    def secret(self, record: KeyRecord) -> bytes | None:
        """The decrypted private material of one version; None if it was purged meanwhile."""
        row = (
            self._conn()
            .execute(
                "SELECT secret FROM versions WHERE name = ? AND version = ?",
                (record.name, record.version),
            )
            .fetchone()
        )
        if row is None:
            return None
        blob = bytes(row[0])
        return self._seal.decrypt(blob[:12], blob[12:], f"{record.name}/{record.version}".encode())

    # -- keys -----------------------------------------------------------------------------------

    def add_version(self, record: KeyRecord, secret: bytes) -> KeyRecord | None:
        """Store a new version; None if the name belongs to a soft-deleted key."""
        with self._write() as db:
            row = db.execute(
                "SELECT name, deleted FROM names WHERE name = ?", (record.name,)
            ).fetchone()
            if row is not None and row[1] is not None:
                return None
            if row is None:
                db.execute("INSERT INTO names (name) VALUES (?)", (record.name,))
            else:
                record = record.with_changes(name=row[0])
            db.execute(
                "INSERT INTO versions (name, version, record, secret) VALUES (?, ?, ?, ?)",
                (record.name, record.version, record.to_json(), self._seal_secret(record, secret)),
            )
        return record

    def _latest(self, db: sqlite3.Connection, name: str, deleted: bool) -> KeyRecord | None:
        row = db.execute(
            "SELECT v.name, v.version, v.record FROM versions v JOIN names n ON n.name = v.name "
            f"WHERE v.name = ? AND n.deleted IS {'NOT ' if deleted else ''}NULL "
            "ORDER BY v.seq DESC LIMIT 1",
            (name,),
        ).fetchone()
        return KeyRecord.from_row(*row) if row else None

    def get(self, name: str, version: str | None = None) -> KeyRecord | None:
        """A live (not deleted) key: its latest version, or the one asked for."""
        db = self._conn()
        if not version:
            return self._latest(db, name, deleted=False)
        row = db.execute(
            "SELECT v.name, v.version, v.record FROM versions v JOIN names n ON n.name = v.name "
            "WHERE v.name = ? AND v.version = ? AND n.deleted IS NULL",
            (name, version),
        ).fetchone()
        return KeyRecord.from_row(*row) if row else None

    def update(
        self, name: str, version: str | None, change: Callable[[KeyRecord], KeyRecord]
    ) -> KeyRecord | None:
        """Read-modify-write one version's description atomically; None if it does not exist."""
        with self._write() as db:
            current = self.get(name, version)
            if current is None:
                return None
            updated = change(current)
            db.execute(
                "UPDATE versions SET record = ? WHERE name = ? AND version = ?",
                (updated.to_json(), current.name, current.version),
            )
        return updated

    def list_latest(self, offset: int, limit: int) -> list[KeyRecord]:
        """Latest version of each live key, by name."""
        rows = (
            self._conn()
            .execute(
                "SELECT name FROM names WHERE deleted IS NULL ORDER BY name LIMIT ? OFFSET ?",
                (limit, offset),
            )
            .fetchall()
        )
        db = self._conn()
        return [r for r in (self._latest(db, row[0], deleted=False) for row in rows) if r]

    def list_versions(self, name: str, offset: int, limit: int) -> list[KeyRecord]:
        """Every version of a live key, oldest first."""
        rows = (
            self._conn()
            .execute(
                "SELECT v.name, v.version, v.record FROM versions v "
                "JOIN names n ON n.name = v.name "
                "WHERE v.name = ? AND n.deleted IS NULL ORDER BY v.seq LIMIT ? OFFSET ?",
                (name, limit, offset),
            )
            .fetchall()
        )
        return [KeyRecord.from_row(*row) for row in rows]

    # -- soft delete ----------------------------------------------------------------------------

    def delete(self, name: str) -> tuple[KeyRecord, DeletedInfo] | None:
        """Soft-delete every version of a key; None if there is no live key of that name."""
        now = int(time.time())
        info = DeletedInfo(now, now + RETENTION_DAYS * 86400)
        with self._write() as db:
            latest = self._latest(db, name, deleted=False)
            if latest is None:
                return None
            db.execute(
                "UPDATE names SET deleted = ?, purge_at = ? WHERE name = ?",
                (info.deleted, info.purge_at, name),
            )
        return latest, info

    def deleted(self, name: str) -> tuple[KeyRecord, DeletedInfo] | None:
        db = self._conn()
        row = db.execute("SELECT deleted, purge_at FROM names WHERE name = ?", (name,)).fetchone()
        latest = self._latest(db, name, deleted=True)
        if row is None or latest is None:
            return None
        return latest, DeletedInfo(int(row[0]), int(row[1]))

    def list_deleted(self, offset: int, limit: int) -> list[tuple[KeyRecord, DeletedInfo]]:
        rows = (
            self._conn()
            .execute(
                "SELECT name FROM names WHERE deleted IS NOT NULL ORDER BY name LIMIT ? OFFSET ?",
                (limit, offset),
            )
            .fetchall()
        )
        return [d for d in (self.deleted(row[0]) for row in rows) if d]

    def recover(self, name: str) -> KeyRecord | None:
        """Undo a soft delete; None if no deleted key has that name."""
        with self._write() as db:
            if self._latest(db, name, deleted=True) is None:
                return None
            db.execute("UPDATE names SET deleted = NULL, purge_at = NULL WHERE name = ?", (name,))
            return self._latest(db, name, deleted=False)

    def purge(self, name: str) -> bool:
        """Erase a soft-deleted key for good; False if no deleted key has that name."""
        with self._write() as db:
            if self._latest(db, name, deleted=True) is None:
                return False
            db.execute("DELETE FROM versions WHERE name = ?", (name,))
            db.execute("DELETE FROM names WHERE name = ?", (name,))
        return True
