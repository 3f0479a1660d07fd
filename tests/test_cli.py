import contextlib
import sqlite3
import stat
from pathlib import Path

import pytest

from app.cli import main
from app.config import Settings


def test_migrate_creates_the_sqlite_database_under_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PISTALKA_DATABASE_URL", raising=False)
    main(["migrate"])
    database = tmp_path / "data" / "pistalka.db"
    assert database.exists()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("select name from sqlite_master where type = 'table'")
        tables = {name for (name,) in rows}
    assert "organisation" in tables
    assert "outbox_mail" in tables


def test_server_key_is_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"
    settings = Settings(data_dir=tmp_path / "data", secret_key_file=path)
    key = settings.server_key
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert Settings(data_dir=tmp_path / "data", secret_key_file=path).server_key == key


def test_configured_server_key_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"
    settings = Settings(data_dir=tmp_path, secret_key="ab" * 32, secret_key_file=path)
    assert settings.server_key == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "secret.key").exists()
    assert not path.exists()


def test_malformed_configured_server_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret_key"):
        Settings(data_dir=tmp_path, secret_key="too short")
