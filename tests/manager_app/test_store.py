"""The store: migrations in order, answers encrypted at rest, the update queue, file modes."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from manager_helpers import media_server

from manager_app.crypto import KEY_FILE, hash_password, verify_password
from manager_app.store import DB_FILE, MIGRATIONS, SCHEMA_VERSION, Store

PLAINTEXT = "pl41ntext-answer-that-must-not-be-on-disk"


def _tables(store: Store) -> set[str]:
    rows = store._query("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r["name"] for r in rows}


def test_a_new_store_is_at_the_latest_schema(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    assert {
        "schema_version", "manifests", "answers", "service_states", "updates",
        "micromanagers", "credentials", "removals", "sessions",
    } <= _tables(store)
    store.close()
    # Reopening applies nothing twice.
    again = Store.open(tmp_path)
    rows = again._query("SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    again.close()


def test_an_old_database_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    from manager_app.crypto import load_fernet

    conn = sqlite3.connect(tmp_path / DB_FILE, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    old = Store(conn, load_fernet(tmp_path), tmp_path / DB_FILE)
    assert old.migrate(target=1) == 1
    assert "sessions" not in _tables(old)
    manifest_id = old._conn.execute(
        "INSERT INTO manifests (received_at, project, manifest, params, changes)"
        " VALUES ('t', 'media-server', ?, '{}', '[]')",
        (media_server().model_dump_json(),),
    ).lastrowid
    old.close()

    store = Store.open(tmp_path)
    assert store.schema_version() == SCHEMA_VERSION
    record = store.latest_manifest()
    assert record is not None and record.id == manifest_id
    assert record.manifest == media_server()
    assert record.effective is None  # the column added by migration 2
    store.close()


def test_a_newer_database_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this mora"):
        Store.open(tmp_path)


def test_answers_are_encrypted_at_rest(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.set_answer("jellyfin.api_key", PLAINTEXT)
    store.set_answer("lldap.admin_email", "admin@example.com")
    assert store.answer("jellyfin.api_key") == PLAINTEXT
    assert store.answers() == {
        "jellyfin.api_key": PLAINTEXT, "lldap.admin_email": "admin@example.com",
    }
    assert set(store.answered()) == {"jellyfin.api_key", "lldap.admin_email"}
    store.close()
    # No file in the data folder (database, WAL, key) holds the plaintext.
    for path in tmp_path.iterdir():
        assert PLAINTEXT.encode() not in path.read_bytes(), path.name
    # And a fresh process (same key file) reads it back.
    assert Store.open(tmp_path).answer("jellyfin.api_key") == PLAINTEXT


def test_the_key_and_the_database_are_private(tmp_path: Path) -> None:
    Store.open(tmp_path / "data").close()
    for name in (KEY_FILE, DB_FILE):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_another_key_cannot_read_the_answers(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.set_answer("a.b", PLAINTEXT)
    store.close()
    (tmp_path / KEY_FILE).unlink()
    from cryptography.fernet import InvalidToken

    with pytest.raises(InvalidToken):
        Store.open(tmp_path).answers()


def test_triggers_coalesce_into_the_queued_update(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    first = store.enqueue_update("answer to a.x", ["answered a.x"])
    assert store.enqueue_update("answer to a.y", ["answered a.y"]) == first
    assert store.enqueue_update("answer to a.x", ["answered a.x"]) == first
    queued = store.next_queued()
    assert queued is not None
    assert queued.triggers == ["answer to a.x", "answer to a.y"]
    assert queued.changes == ["answered a.x", "answered a.y"]
    # Once it runs, a new trigger makes the next update.
    store.start_update(first, ["a"])
    second = store.enqueue_update("answer to a.z")
    assert second != first
    store.finish_update(first, "succeeded")
    assert [u.id for u in store.updates()] == [second, first]


def test_updates_left_running_are_marked_interrupted(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    update_id = store.enqueue_update("manifest received")
    store.start_update(update_id, ["lldap"])
    store.close()
    store = Store.open(tmp_path)
    interrupted = store.interrupted_updates()
    assert [u.id for u in interrupted] == [update_id]
    record = store.update(update_id)
    assert record is not None and record.status == "interrupted" and record.error
    assert store.interrupted_updates() == []


def test_service_states_and_removals(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.set_states({"a": "deploying", "b": "deploying"}, update_id=1)
    store.set_states({"a": "running"}, update_id=1)
    store.set_states({"b": "failed"}, update_id=1, error="ImagePullBackOff")
    records = store.service_records()
    assert store.states() == {"a": "running", "b": "failed"}
    assert records["b"].error == "ImagePullBackOff" and records["a"].error is None
    store.request_removals(["b"])
    assert store.removals() == ["b"]
    assert store.confirm_removal("b") and not store.confirm_removal("b")
    assert store.removals() == [] and store.removals(confirmed=True) == ["b"]
    store.finish_removal("b")
    assert store.states() == {"a": "running"} and store.removals(confirmed=True) == []


def test_password_hashes_are_salted_scrypt() -> None:
    a, b = hash_password("hunter2"), hash_password("hunter2")
    assert a != b and a.startswith("scrypt$")
    assert verify_password("hunter2", a) and not verify_password("hunter3", a)
    assert not verify_password("hunter2", "garbage")
