"""Workspaces and the metadata DB: init, discovery, migrations, SQLite pragmas."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.errors import AlreadyExists, InvalidInput
from loopml.store import MetadataDB, Workspace


def test_init_creates_the_layout_and_is_found_from_below(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.init(tmp_path / "proj") as ws:
        assert (tmp_path / "proj" / "loopml.toml").is_file()
        assert (tmp_path / "proj" / ".loopml" / "loopml.db").is_file()
        assert ws.db.current_revision() == MetadataDB.head_revision()
    (tmp_path / "proj" / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "proj" / "a" / "b")
    with Workspace.open() as ws:
        assert ws.home == (tmp_path / "proj").resolve()
    with pytest.raises(AlreadyExists):
        Workspace.init(tmp_path / "proj")


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_ws: Workspace) -> None:
    with sqlite_ws.db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_migrations_apply_on_open_and_are_idempotent(ws: Workspace) -> None:
    assert ws.db.current_revision() == MetadataDB.head_revision()
    ws.db.upgrade()  # nothing pending: a no-op
    again = MetadataDB(ws.db.url)
    assert again.current_revision() == MetadataDB.head_revision()
    again.dispose()


def test_bad_store_uri_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="store_uri"):
        Workspace.init(tmp_path / "p", store_uri="not a url")
    with pytest.raises(InvalidInput, match="dialect"):
        Workspace.open(tmp_path / "p", store_uri="nosuchdb://x")
