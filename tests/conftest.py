"""Database, settings and app fixtures: every test runs on SQLite and, where configured, PostgreSQL.

Each test gets an empty database migrated by Alembic: on SQLite a copy of a migrated template
file, on PostgreSQL a database of the test run's own, emptied after each test. Tests commit for
real, so workers and concurrent sessions can be tested as they run in production.
"""

import asyncio
import importlib.util
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app import migrate
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import Base, Plan
from app.services import courier

pytest_plugins = ["tests.smtp", "tests.browser", "tests.fake_gopay"]

CONFIGURED_POSTGRES_URL = os.environ.get("PISTALKA_TEST_POSTGRES_URL")


def _run_database(configured: str) -> str:
    # Each test run works in a database of its own beside the configured one, so that runs at
    # the same time on one server (two checkouts, a developer beside CI) never empty each
    # other's tables.
    url = make_url(configured)
    return url.set(database=f"{url.database}_{os.getpid()}").render_as_string(hide_password=False)


POSTGRES_URL = _run_database(CONFIGURED_POSTGRES_URL) if CONFIGURED_POSTGRES_URL else None
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
# Argon2id at a test cost; production parameters are measured in bench/ and tested once.
FAST_ARGON2 = {"argon2_memory_kib": 1024, "argon2_iterations": 1, "argon2_lanes": 1}
TEST_SECRET = "11" * 32
# The operator's details for invoices, as a configured service has them.
SUPPLIER = {
    "supplier_name": "Píšťalka s.r.o.",
    "supplier_address": "Vodičkova 12, 110 00 Praha 1",
    "supplier_ico": "27074358",
    "supplier_dic": "CZ27074358",
    "supplier_bank_account": "2900123456/2010",
}


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "public_url": "http://testserver",
        "secret_key": TEST_SECRET,
        "smtp_host": "127.0.0.1",
        "smtp_port": 9,
        "login_slowdown_seconds": 0.01,
        **SUPPLIER,
        **FAST_ARGON2,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("template")
    path = directory / "template.db"
    migrate.upgrade(make_settings(directory, f"sqlite:///{path}"))
    return path


async def _on_server(*statements: str) -> None:
    """Statements outside a transaction, on the configured database (CREATE/DROP DATABASE)."""
    assert CONFIGURED_POSTGRES_URL is not None
    engine = create_async_engine(
        Settings(database_url=CONFIGURED_POSTGRES_URL).resolved_database_url,
        isolation_level="AUTOCOMMIT",
    )
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def create_run_database(suffix: str = "") -> str:
    """An empty database of this test run (dropped at its end), and its URL."""
    assert POSTGRES_URL is not None
    url = make_url(POSTGRES_URL)
    name = f"{url.database}{suffix}"
    asyncio.run(
        _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    )
    return url.set(database=name).render_as_string(hide_password=False)


def drop_run_database(suffix: str = "") -> None:
    assert POSTGRES_URL is not None
    name = f"{make_url(POSTGRES_URL).database}{suffix}"
    asyncio.run(_on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _drop_abandoned_run_databases() -> None:
    """Drop the databases of earlier runs on this machine that were killed before their end."""
    assert CONFIGURED_POSTGRES_URL is not None
    base = make_url(CONFIGURED_POSTGRES_URL).database
    pattern = re.compile(rf"{re.escape(str(base))}_(\d+)(_restore)?")

    async def names() -> list[str]:
        engine = create_async_engine(
            Settings(database_url=CONFIGURED_POSTGRES_URL).resolved_database_url
        )
        try:
            async with engine.connect() as connection:
                return list(await connection.scalars(text("SELECT datname FROM pg_database")))
        finally:
            await engine.dispose()

    for name in asyncio.run(names()):
        found = pattern.fullmatch(name)
        if found is None or int(found.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(found.group(1)), 0)
        except ProcessLookupError:
            asyncio.run(_on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except PermissionError:
            pass  # a live process of another user


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    _drop_abandoned_run_databases()
    url = create_run_database()
    migrate.upgrade(Settings(database_url=url))
    yield url
    drop_run_database()


def starting_plans() -> list[dict[str, object]]:
    """The price list the billing migration seeds, as every fresh database has it."""
    path = next(Path(migrate.__file__).parent.parent.glob("migrations/versions/*_billing.py"))
    spec = importlib.util.spec_from_file_location("billing_migration", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plans: list[dict[str, object]] = module.STARTING_PLANS
    return plans


async def empty_postgres(url: str) -> None:
    engine = create_async_engine(Settings(database_url=url).resolved_database_url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await connection.execute(
            insert(Plan), [{"id": uuid.uuid4(), **plan} for plan in starting_plans()]
        )
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    # Synchronous on purpose: migrating runs its own event loop, outside the tests' loop.
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "pistalka.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_schema")
    return url


@pytest.fixture
async def database_url(backend: str, fresh_database: str) -> AsyncIterator[str]:
    try:
        yield fresh_database
    finally:
        if backend == "postgres":
            await empty_postgres(fresh_database)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    try:
        yield create_sessionmaker(engine, settings)
    finally:
        await engine.dispose()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.engine.dispose()


@pytest.fixture(autouse=True)
async def no_mail_to_a_whistleblower_outlives_its_test() -> AsyncIterator[None]:
    """Mails to whistleblowers are tasks of the event loop the tests share: a test that sent one
    with no SMTP server would leave it retrying into the next tests."""
    yield
    await courier.current().drain(timeout=0)
