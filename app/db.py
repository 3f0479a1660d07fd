"""Engine, session factory and the request-scoped session dependency."""

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, exc, false, update
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.models import Organisation


def _private_sqlite_files(database: str | None) -> None:
    """The database file exists, readable by this user only, before SQLite opens it.

    SQLite gives its write-ahead log and shared-memory files the main file's mode, so they are
    private too; files of an older installation are made private here.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # A missing directory is left to SQLite, whose error says what it could not open.
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(database + suffix, 0o600)


class DatabaseTimeout(Exception):
    """The database did not answer within `database_timeout_seconds`: it is away or frozen."""


# The worker and the commands may run statements that take minutes (VACUUM after a purge).
LONG_STATEMENT_SECONDS = 30.0


def create_engine(settings: Settings, *, long_statements: bool = False) -> AsyncEngine:
    """The engine, every wait of which is bounded so a stuck database answers 503 in seconds.

    Connecting, waiting for a pooled connection and (on SQLite) for the write lock never take
    longer than `database_timeout_seconds`; nor does a statement, unless `long_statements`.
    """
    # hide_parameters: a database error's message, which may reach a log, never quotes values.
    url = settings.resolved_database_url
    timeout = settings.database_timeout_seconds
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_sqlite_files(make_url(url).database)
        busy = max(timeout, LONG_STATEMENT_SECONDS) if long_statements else timeout
        engine = create_async_engine(url, connect_args={"timeout": busy}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
            # Deleted rows are overwritten with zeros, so purged and erased ciphertext does not
            # stay readable on free pages of the file (and in backups copied from it).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    connect_args: dict[str, float] = {"timeout": timeout}
    if not long_statements:
        connect_args["command_timeout"] = timeout
    engine = create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_timeout=timeout,
        connect_args=connect_args,
        hide_parameters=True,
    )

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        # A server that accepts the TCP connection and never answers (frozen, overloaded).
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except TimeoutError as error:
            raise DatabaseTimeout() from error

    @event.listens_for(engine.sync_engine, "handle_error")
    def _timeout_loses_the_connection(context: ExceptionContext) -> Exception | None:
        # A statement or a connect that timed out leaves the connection in an unknown state (a
        # frozen server may still run what it was sent): it is closed, never reused, so the
        # transaction can never be committed after the client was answered.
        if isinstance(context.original_exception, TimeoutError):
            context.is_disconnect = True
            context.invalidate_pool_on_disconnect = False
            return DatabaseTimeout()
        return None

    @event.listens_for(engine.sync_engine, "checkout")
    def _discard_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # asyncpg notices a connection the server closed (a restart, a terminated backend)
        # without a round trip; the pool then opens a fresh one. A pre-ping would cost three
        # round trips (BEGIN, a query, ROLLBACK) on every checkout.
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("the server closed the connection")

    return engine


async def sqlite_write_lock(session: AsyncSession) -> None:
    """On SQLite, take the database's write lock now, before the transaction reads anything.

    pysqlite runs SELECTs outside a transaction until the first write, and FOR UPDATE is a no-op
    there: an UPDATE that matches nothing takes the lock (waiting out the busy timeout), so the
    reads that follow see every commit and no other writer slips in between.
    """
    if (await session.connection()).dialect.name == "sqlite":
        await session.execute(
            update(Organisation)
            .where(false())
            .values(slug=Organisation.slug)
            .execution_options(synchronize_session=False)
        )


def create_sessionmaker(
    engine: AsyncEngine, settings: Settings | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that carry the settings: the audit chain's key comes from them.

    Without settings a session can read, but it cannot append to or verify an audit chain.
    """
    return async_sessionmaker(engine, expire_on_commit=False, info={"settings": settings})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit on success, roll back on any exception."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": the commit happens before the response is sent, so a failed commit
# can never follow a success answer.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
