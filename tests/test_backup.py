"""`pistalka backup` and `pistalka restore` on SQLite and PostgreSQL, against a serving app."""

import asyncio
import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.cli import main
from app.config import Settings
from app.main import create_app
from tests.browser import ServerThread, free_port
from tests.conftest import TEST_SECRET, create_run_database, drop_run_database, make_settings
from tests.factories import login, submit, verified_organisation

PISTALKA = str(Path(sys.executable).with_name("pistalka"))
DESCRIPTION = "The treasurer moved the fund's money to his own company."
HEADERS = {"sqlite": b"SQLite format 3\x00", "postgres": b"PGDMP"}
REASON = {"X-Access-Reason": "restore check"}


@pytest.fixture
def restore_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind to restore into."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored' / 'pistalka.db'}"
        return
    yield create_run_database("_restore")
    drop_run_database("_restore")


def _configure(monkeypatch: pytest.MonkeyPatch, database_url: str, data_dir: Path) -> None:
    monkeypatch.setenv("PISTALKA_DATABASE_URL", database_url)
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", TEST_SECRET)


def _header(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(16)


async def test_backup_taken_while_serving_restores_to_a_working_service(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    restore_url: str,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    app = create_app(settings.model_copy(update={"submissions_per_hour": 10_000}))
    backup_file = tmp_path / "pistalka.backup"
    environment = {
        **os.environ,
        "PISTALKA_DATABASE_URL": settings.database_url,
        "PISTALKA_DATA_DIR": str(tmp_path),
        "PISTALKA_SECRET_KEY": TEST_SECRET,
    }
    during: list[str] = []

    with ServerThread(app, port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            organisation = await verified_organisation(client, sessionmaker)
            code = (await submit(client, organisation["slug"], description=DESCRIPTION))[
                "tracking_code"
            ]
            finished = asyncio.Event()

            async def keep_submitting() -> None:
                while not finished.is_set():
                    during.append((await submit(client, organisation["slug"]))["tracking_code"])
                    await asyncio.sleep(0.02)

            submitting = asyncio.create_task(keep_submitting())
            # Another process, as an operator's cron job would run it.
            completed = await asyncio.to_thread(
                subprocess.run,
                [PISTALKA, "backup", str(backup_file)],
                env=environment,
                capture_output=True,
                text=True,
                check=False,
            )
            finished.set()
            await submitting

    assert completed.returncode == 0, completed.stderr
    assert "secret key" in completed.stdout
    assert during, "the service took no report while the backup ran"
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert _header(backup_file).startswith(HEADERS[backend])

    _configure(monkeypatch, restore_url, tmp_path / "restored")
    await asyncio.to_thread(main, ["restore", str(backup_file)])

    restored = create_app(
        make_settings(tmp_path / "restored", restore_url, lookups_per_10_minutes=10_000)
    )
    transport = httpx.ASGITransport(app=restored)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        view = await client.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
        assert view.status_code == 200
        assert view.json()["report"]["description"] == DESCRIPTION
        # Reports were sent one after another, so a consistent snapshot holds a prefix of them.
        found = []
        for later in during:
            response = await client.get(
                "/api/v1/public/reports/self", headers={"X-Tracking-Code": later}
            )
            assert response.status_code in (200, 404)
            found.append(response.status_code == 200)
        assert found == sorted(found, reverse=True)

        assert (await login(client, organisation["email"])).status_code == 200
        items = (await client.get("/api/v1/cases")).json()["items"]
        assert len(items) == 1 + sum(found)
        descriptions = []
        for item in items:
            case = await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)
            assert case.status_code == 200
            descriptions.append(case.json()["report"]["description"])
        assert DESCRIPTION in descriptions
    await restored.state.engine.dispose()


def test_restore_refuses_a_database_that_is_not_empty(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure(monkeypatch, settings.database_url, tmp_path)
    backup_file = tmp_path / "pistalka.backup"
    main(["backup", str(backup_file)])

    with pytest.raises(SystemExit) as exit_info:
        main(["restore", str(backup_file)])

    assert exit_info.value.code == 1
    assert "not empty" in capsys.readouterr().err


def test_backup_refuses_an_existing_file_unless_forced(
    settings: Settings,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure(monkeypatch, settings.database_url, tmp_path)
    backup_file = tmp_path / "pistalka.backup"
    backup_file.write_bytes(b"yesterday's backup")
    backup_file.chmod(0o644)

    with pytest.raises(SystemExit) as exit_info:
        main(["backup", str(backup_file)])
    assert exit_info.value.code == 1
    assert "--force" in capsys.readouterr().err
    assert backup_file.read_bytes() == b"yesterday's backup"

    main(["backup", "--force", str(backup_file)])
    assert _header(backup_file).startswith(HEADERS[backend])
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_sqlite_backup_is_refused_by_a_postgresql_configuration(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(monkeypatch, f"sqlite:///{sqlite_template}", tmp_path)
    backup_file = tmp_path / "pistalka.backup"
    main(["backup", str(backup_file)])
    # Nothing listens on port 9: the kind is checked before any connection.
    monkeypatch.setenv("PISTALKA_DATABASE_URL", "postgresql://pistalka@127.0.0.1:9/pistalka")

    completed = subprocess.run(  # noqa: S603 - our own command
        [PISTALKA, "restore", str(backup_file)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 1
    assert "sqlite backup but the configured database is postgres" in completed.stderr


def test_an_older_backup_is_migrated_on_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_settings(tmp_path / "old", f"sqlite:///{tmp_path / 'old.db'}")
    scripts = ScriptDirectory.from_config(migrate.alembic_config(old))
    (first,) = scripts.get_bases()
    migrate.upgrade(old, first)
    _configure(monkeypatch, old.database_url, tmp_path)
    backup_file = tmp_path / "old.backup"
    main(["backup", str(backup_file)])

    restored = tmp_path / "new.db"
    monkeypatch.setenv("PISTALKA_DATABASE_URL", f"sqlite:///{restored}")
    main(["restore", str(backup_file)])

    with contextlib.closing(sqlite3.connect(restored)) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == scripts.get_current_head()
