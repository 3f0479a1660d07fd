"""`pistalka backup` and `pistalka restore`: a consistent copy of the whole database.

Report contents are in the database only as ciphertext, so a backup reveals none of them; the
server secret key (PISTALKA_SECRET_KEY or PISTALKA_SECRET_KEY_FILE, outside the data directory)
is never in a backup and must be kept apart from it.
"""

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import URL, make_url

from app import migrate
from app.config import Settings
from app.models import Base

SQLITE_HEADER = b"SQLite format 3\x00"
PG_DUMP_HEADER = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that was refused or failed; the message is for the operator."""


def _url(settings: Settings) -> URL:
    return make_url(settings.resolved_database_url)


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("the configured SQLite database is not a file")
    return Path(url.database).resolve()


def _pg_environment(url: URL) -> dict[str, str]:
    """libpq settings for pg_dump/pg_restore; the password only ever goes into the environment."""
    query = {key: str(value) for key, value in url.query.items()}
    values = {
        "PGHOST": url.host or query.get("host"),
        "PGPORT": str(url.port) if url.port else query.get("port"),
        "PGUSER": url.username,
        "PGPASSWORD": url.password,
        "PGDATABASE": url.database,
    }
    sslmode = query.get("sslmode") or query.get("ssl")
    if sslmode is not None:
        values["PGSSLMODE"] = "require" if sslmode.lower() in ("true", "1") else sslmode
    environment = dict(os.environ)
    environment.update({key: value for key, value in values.items() if value})
    return environment


def _run(command: list[str], url: URL) -> None:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed program, no shell
            command, env=_pg_environment(url), capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BackupError(f"{command[0]} is not installed (Debian: postgresql-client)") from None
    if completed.returncode != 0:
        raise BackupError(f"{command[0]} failed: {completed.stderr.strip()}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(settings: Settings, target: Path, *, force: bool = False) -> None:
    """Write a consistent snapshot of the configured database to `target`, mode 0600."""
    url = _url(settings)
    if target.exists() and not force:
        raise BackupError(f"{target} exists; use --force to overwrite it")
    target = target.resolve()
    if not target.parent.is_dir():
        raise BackupError(f"the directory {target.parent} does not exist")
    # mkstemp creates the file with mode 0600; the snapshot is written into that same file.
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    temporary = Path(name)
    try:
        if _is_sqlite(url):
            _backup_sqlite(_sqlite_path(url), temporary)
        else:
            _run(["pg_dump", "--format=custom", f"--file={temporary}"], url)
        _fsync(temporary)
        if force:
            temporary.replace(target)
        else:
            # A hard link fails if the target appeared meanwhile: no overwrite by a race either.
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise BackupError(f"{target} exists; use --force to overwrite it") from None
    finally:
        temporary.unlink(missing_ok=True)
    _fsync(target.parent)


def _backup_sqlite(source_path: Path, destination_path: Path) -> None:
    if not source_path.exists():
        raise BackupError(f"the database {source_path} does not exist")
    source = sqlite3.connect(f"{source_path.as_uri()}?mode=rw", uri=True, timeout=30)
    destination = sqlite3.connect(destination_path)
    try:
        # One step: the copy is one read transaction, so writers go on (WAL) and it is consistent.
        source.backup(destination)
        # A single self-contained file, openable read-only, without a -wal beside it.
        destination.execute("PRAGMA journal_mode=DELETE")
    finally:
        destination.close()
        source.close()


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def backup_kind(path: Path) -> str:
    """'sqlite' or 'postgres', from the file's header."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist") from None
    if header.startswith(SQLITE_HEADER):
        return "sqlite"
    if header.startswith(PG_DUMP_HEADER):
        return "postgres"
    raise BackupError(f"{path} is neither an SQLite backup nor a pg_dump custom-format archive")


def _existing_tables(settings: Settings) -> set[str]:
    url = _url(settings)
    if _is_sqlite(url):
        path = _sqlite_path(url)
        if not path.exists():
            return set()
        with contextlib.closing(_read_only(path)) as db:
            return {name for (name,) in db.execute("SELECT name FROM sqlite_master")}

    async def names() -> set[str]:
        from app.db import create_engine

        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                found = await connection.run_sync(lambda c: inspect(c).get_table_names())
        finally:
            await engine.dispose()
        return set(found)

    return asyncio.run(names())


def restore(settings: Settings, source: Path) -> None:
    """Bring a backup into the configured database, which must be empty, and migrate it."""
    kind = backup_kind(source)
    url = _url(settings)
    configured = "sqlite" if _is_sqlite(url) else "postgres"
    if kind != configured:
        raise BackupError(
            f"{source} is a {kind} backup but the configured database is {configured}"
        )
    ours = {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"}
    present = sorted(_existing_tables(settings) & ours)
    if present:
        raise BackupError(
            f"the configured database is not empty (it has the table {present[0]}); "
            "restore only into an empty database"
        )
    if kind == "sqlite":
        path = _sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.closing(_read_only(source)) as backup_db,
            contextlib.closing(sqlite3.connect(path)) as database,
        ):
            backup_db.backup(database)
    else:
        # The dump's owners and grants name roles of the old server; the new one may lack them.
        command = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
        command += ["--single-transaction", f"--dbname={url.database}", str(source)]
        _run(command, url)
    # A backup from an older version is brought up to this version's schema.
    migrate.upgrade(settings)
