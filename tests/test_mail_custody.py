"""Mails that carry a whistleblower's secrets never persist; the database forgets what it no
longer needs. The tests act as an attacker with a copy of the database files and the server key.
"""

import asyncio
import json
import os
import shutil
import sqlite3
import stat
import struct
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto, migrate, worker
from app.config import Settings
from app.db import create_engine
from app.main import create_app
from app.models import (
    Invitation,
    LoginThrottle,
    Member,
    MemberSession,
    OperatorSession,
    Organisation,
    OutboxMail,
    Report,
)
from app.models.base import UTCDateTime, utcnow
from app.routers.intake import _form_token
from app.services import courier, housekeeping, mail, operator, reports
from tests.conftest import make_settings
from tests.factories import PASSWORD, register, submit, verified_organisation
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]
WHISTLEBLOWER = "oznamovatel@example.org"
DESCRIPTION = "The director approved invoices for work never done."
LEGACY_OUTBOX_AAD = b"outbox"

WAL_HEADER = 32
FRAME_HEADER = 24


def sqlite_snapshots(db: Path, wal: Path, workdir: Path) -> Iterator[sqlite3.Connection]:
    """The database as of every commit the write-ahead log still holds, as an attacker reads it.

    SQLite replays a log up to its last complete commit, so a copy of the log cut after any
    commit frame opens as the database was at that moment.
    """
    log = wal.read_bytes() if wal.exists() else b""
    cuts = [0]
    if len(log) >= WAL_HEADER:
        page_size = struct.unpack(">I", log[8:12])[0]
        frame = FRAME_HEADER + page_size
        for start in range(WAL_HEADER, len(log) - frame + 1, frame):
            if struct.unpack(">I", log[start + 4 : start + 8])[0]:  # a commit frame
                cuts.append(start + frame)
    for number, cut in enumerate(cuts):
        directory = workdir / f"snapshot{number}"
        directory.mkdir(parents=True)
        shutil.copyfile(db, directory / "copy.db")
        if cut:
            (directory / "copy.db-wal").write_bytes(log[:cut])
        connection = sqlite3.connect(directory / "copy.db")
        try:
            yield connection
        finally:
            connection.close()


def open_outbox_blob(settings: Settings, blob: bytes, row: dict[str, Any]) -> bytes | None:
    """An attacker with the server key tries every associated data a row suggests."""
    key = mail._key(settings)
    candidates = [LEGACY_OUTBOX_AAD]
    seal_id = row.get("seal_id")
    if seal_id is not None and row.get("kind") is not None:
        # SQLite keeps a UUID as 32 hexadecimal characters, PostgreSQL as 16 bytes.
        as_uuid = uuid.UUID(seal_id) if isinstance(seal_id, str) else uuid.UUID(bytes=seal_id)
        candidates.append(mail.outbox_aad(row["kind"], as_uuid))
    for aad in candidates:
        try:
            return crypto.open_sealed(key, blob, aad)
        except crypto.CryptoError:
            continue
    return None


def varlena(value: bytes) -> bytes:
    """The contents of a PostgreSQL variable-length value after its 1- or 4-byte header."""
    value = bytes(value)
    return value[1:] if value[0] & 1 else value[4:]


def secret_forms(*secrets: str) -> list[bytes]:
    forms: list[bytes] = []
    for secret in secrets:
        for variant in {secret, secret.lower(), secret.replace("-", "")}:
            forms += [variant.encode(), variant.encode("utf-16-le")]
    return forms


async def outbox_pages(sessionmaker: Sessionmaker) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The outbox table's raw pages and every tuple on them, dead or alive, by column, as
    PostgreSQL's pageinspect shows them to someone with access to the server."""
    async with sessionmaker() as session, session.begin():
        await session.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        columns = list(
            await session.scalars(
                text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'outbox_mail'::regclass"
                    " AND attnum > 0 ORDER BY attnum"
                )
            )
        )
        pages = await session.scalar(
            text("SELECT pg_relation_size('outbox_mail') / current_setting('block_size')::int")
        )
        raw_pages: list[bytes] = []
        tuples: list[dict[str, Any]] = []
        for page in range(int(pages or 0)):
            raw_pages.append(
                await session.scalar(
                    text("SELECT get_raw_page('outbox_mail', :page)"), {"page": page}
                )
            )
            for values in await session.scalars(
                text(
                    "SELECT tuple_data_split('outbox_mail'::regclass, t_data, t_infomask,"
                    " t_infomask2, t_bits) FROM heap_page_items(get_raw_page('outbox_mail',"
                    " :page)) WHERE t_data IS NOT NULL"
                ),
                {"page": page},
            ):
                tuples.append(dict(zip(columns, values, strict=False)))
    return raw_pages, tuples


async def submit_with_receipt(
    settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> tuple[dict[str, Any], bytes]:
    """A report with the whistleblower's e-mail through the app, every mail sent; the answer
    and the report key its code unwraps."""
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        organisation = await verified_organisation(client, sessionmaker)
        submitted = await submit(
            client, organisation["slug"], description=DESCRIPTION, email=WHISTLEBLOWER
        )
    while await mail.deliver_due(sessionmaker, settings):
        pass
    await smtp_server.wait_for(3)
    assert any(message["To"] == WHISTLEBLOWER for message in smtp_server.messages)
    async with sessionmaker() as session:
        opened = await reports.open_by_code(session, settings, submitted["tracking_code"])
    await app.state.engine.dispose()
    return submitted, opened.report_key


async def test_a_sent_receipt_leaves_nothing_in_the_sqlite_files_that_the_server_key_opens(
    backend: str,
    settings: Settings,
    sessionmaker: Sessionmaker,
    smtp_server: SMTPServer,
    tmp_path: Path,
) -> None:
    if backend != "sqlite":
        return
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    submitted, report_key = await submit_with_receipt(settings, sessionmaker, smtp_server)
    # The attacker copies the data directory while the service runs.
    db = Path(settings.resolved_database_url.removeprefix("sqlite+aiosqlite:///"))
    stolen = tmp_path / "stolen"
    stolen.mkdir()
    async with sessionmaker() as session:
        await session.execute(text("SELECT 1"))  # holds a connection: the log is not removed
        shutil.copyfile(db, stolen / "pistalka.db")
        wal = db.with_name(db.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, stolen / "pistalka.db-wal")

    raw = b"".join(path.read_bytes() for path in stolen.iterdir())
    for form in [*secret_forms(submitted["tracking_code"], WHISTLEBLOWER), report_key]:
        assert form not in raw
    opened_mails = []
    for snapshot in sqlite_snapshots(
        stolen / "pistalka.db", stolen / "pistalka.db-wal", tmp_path / "attack"
    ):
        snapshot.row_factory = sqlite3.Row
        for row in snapshot.execute("SELECT * FROM outbox_mail"):
            values = dict(row)
            if values["sealed_message"] is not None:
                plaintext = open_outbox_blob(settings, values["sealed_message"], values)
                if plaintext is not None:
                    opened_mails.append(plaintext)
    # The attack works: the organisation's mails, sent and deleted, still open from the log
    # until it is checkpointed; none of them is the whistleblower's.
    assert opened_mails
    for plaintext in opened_mails:
        for form in [*secret_forms(submitted["tracking_code"], WHISTLEBLOWER), report_key]:
            assert form not in plaintext


async def test_no_dead_row_of_the_outbox_on_postgresql_carries_a_receipt(
    backend: str, settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> None:
    if backend != "postgres":
        return
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    submitted, report_key = await submit_with_receipt(settings, sessionmaker, smtp_server)

    raw_pages, tuples = await outbox_pages(sessionmaker)
    assert raw_pages, "the organisation's mails went through the outbox"

    forms = [*secret_forms(submitted["tracking_code"], WHISTLEBLOWER), report_key]
    for page_bytes in raw_pages:
        for form in forms:
            assert form not in page_bytes
    # Every tuple, dead or alive, as its raw attributes: the sealed message and what binds it.
    opened = 0
    for values in tuples:
        sealed = values.get("sealed_message")
        if sealed is None:
            continue
        row = {
            "kind": varlena(values["kind"]).decode() if values.get("kind") else None,
            "seal_id": bytes(values["seal_id"]) if values.get("seal_id") else None,
        }
        plaintext = open_outbox_blob(settings, varlena(sealed), row)
        if plaintext is not None:
            opened += 1
            for form in forms:
                assert form not in plaintext
    # The attack works: the organisation's mails, sent and deleted, are dead rows that open.
    assert opened


def app_client(settings: Settings) -> tuple[Any, httpx.AsyncClient]:
    app = create_app(settings)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return app, client


async def outbox_kinds(sessionmaker: Sessionmaker) -> list[str]:
    async with sessionmaker() as session:
        return sorted(await session.scalars(select(OutboxMail.kind)))


async def test_the_receipt_arrives_from_memory_and_never_enters_the_outbox(
    settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> None:
    app, client = app_client(settings.model_copy(update={"smtp_port": smtp_server.port}))
    async with client:
        organisation = await verified_organisation(client, sessionmaker)
        submitted = await submit(client, organisation["slug"], email=WHISTLEBLOWER)
    [receipt] = await smtp_server.wait_for(1)
    await app.state.engine.dispose()

    assert receipt["To"] == WHISTLEBLOWER
    assert submitted["tracking_url"] in receipt.get_content()
    assert await outbox_kinds(sessionmaker) == ["new_report", "verify_email"]


async def test_a_mail_to_the_whistleblower_leaves_only_once_its_transaction_commits(
    settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> None:
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    async with sessionmaker() as session:
        await session.execute(select(OutboxMail.id))
        courier.send_after_commit(session, settings, to=WHISTLEBLOWER, subject="S", text="T")
        await asyncio.sleep(0.2)
        assert smtp_server.messages == []
        await session.commit()
    [message] = await smtp_server.wait_for(1)
    assert message["To"] == WHISTLEBLOWER


async def test_a_mail_to_the_whistleblower_is_dropped_when_its_transaction_rolls_back(
    settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> None:
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    async with sessionmaker() as session:
        await session.execute(select(OutboxMail.id))
        courier.send_after_commit(session, settings, to=WHISTLEBLOWER, subject="S", text="T")
        await session.rollback()
        # Whatever the session commits later does not bring it back.
        await session.execute(select(OutboxMail.id))
        await session.commit()
    await asyncio.sleep(0.3)
    assert smtp_server.messages == []
    assert courier.current().pending == 0


async def test_no_receipt_for_a_report_whose_file_was_refused_on_the_form(
    settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> None:
    # The form answers the refused file itself: the report's savepoint rolls back, the request's
    # transaction commits.
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    app, client = app_client(settings)
    async with client:
        organisation = await verified_organisation(client, sessionmaker)
        response = await client.post(
            f"/{organisation['slug']}?lang=en",
            data={
                "started": _form_token(settings, int(time.time()) - 10),
                "website": "",
                "description": DESCRIPTION,
                "email": WHISTLEBLOWER,
            },
            files={
                "files": (
                    "cut.jpg",
                    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40,
                    "image/jpeg",
                )
            },
        )
    await app.state.engine.dispose()
    assert response.status_code == 422, response.text
    await asyncio.sleep(0.3)
    assert [m for m in smtp_server.messages if m["To"] == WHISTLEBLOWER] == []
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 0


async def test_a_refused_receipt_is_retried_in_memory_and_delivered_once_with_one_message_id(
    settings: Settings,
    sessionmaker: Sessionmaker,
    smtp_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(courier, "RETRY_BASE", timedelta(seconds=0.05))
    smtp_server.refuse_next = 3  # the server is busy for the first three attempts
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    async with sessionmaker() as session:
        await session.execute(select(OutboxMail.id))
        courier.send_after_commit(session, settings, to=WHISTLEBLOWER, subject="S", text="T")
        await session.commit()

    [message] = await smtp_server.wait_for(1)
    await asyncio.sleep(0.5)
    assert len(smtp_server.messages) == 1
    assert len(smtp_server.refused) == 3
    assert {refused["Message-ID"] for refused in smtp_server.refused} == {message["Message-ID"]}
    assert courier.current().pending == 0


async def test_a_permanently_refused_mail_is_not_retried(
    settings: Settings,
    sessionmaker: Sessionmaker,
    smtp_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(courier, "RETRY_BASE", timedelta(seconds=0.05))
    smtp_server.refuse_next = 1
    smtp_server.refusal = "550 5.1.1 No such mailbox"
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    async with sessionmaker() as session:
        await session.execute(select(OutboxMail.id))
        courier.send_after_commit(session, settings, to=WHISTLEBLOWER, subject="S", text="T")
        await session.commit()
    await asyncio.sleep(0.5)  # ten retries' worth

    assert len(smtp_server.refused) == 1
    assert smtp_server.messages == []
    assert courier.current().pending == 0


async def test_shutdown_gives_waiting_mails_one_last_attempt(
    settings: Settings, sessionmaker: Sessionmaker, free_port: int
) -> None:
    app = create_app(settings.model_copy(update={"smtp_port": free_port}))
    server = SMTPServer(port=free_port)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            organisation = await verified_organisation(client, sessionmaker)
            await submit(client, organisation["slug"], email=WHISTLEBLOWER)
        await asyncio.sleep(0.2)  # the first attempt failed: the next is half a minute away
        assert courier.current().pending == 1
        server.start()
    try:
        assert [m["To"] for m in server.messages] == [WHISTLEBLOWER]
        assert courier.current().pending == 0
    finally:
        server.stop()


async def test_housekeeping_deletes_what_expired_and_keeps_what_is_live(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: Sessionmaker
) -> None:
    registered = await register(client)
    now = utcnow()
    hour = timedelta(hours=1)
    lock = timedelta(minutes=settings.login_lock_minutes)
    async with sessionmaker() as session, session.begin():
        created = await operator.create_operator(session, settings, "op@example.cz", PASSWORD)
        member_id = await session.scalar(
            select(Member.id).where(Member.email == registered["email"])
        )
        organisation_id = await session.scalar(select(Organisation.id))
        assert member_id is not None
        assert organisation_id is not None
        for name, expires_at in (("live", now + hour), ("expired", now - hour)):
            session.add(
                MemberSession(
                    token_hash=name.encode().ljust(32, b"\0"),
                    member_id=member_id,
                    sealed_private_key=b"sealed",
                    expires_at=expires_at,
                )
            )
            session.add(
                OperatorSession(
                    token_hash=name.encode().ljust(32, b"\0"),
                    operator_id=created.operator.id,
                    expires_at=expires_at,
                )
            )
        throttles: list[tuple[bytes, datetime, datetime | None]] = [
            (b"recent", now - lock / 2, None),
            (b"locked", now - 2 * lock, now + hour),
            (b"forgotten", now - 2 * lock, None),
            (b"lock ran out", now - 2 * lock, now - lock),
        ]
        for key, last_failed_at, locked_until in throttles:
            session.add(
                LoginThrottle(
                    key_hash=key.ljust(32, b"\0"),
                    failures=3,
                    last_failed_at=last_failed_at,
                    locked_until=locked_until,
                )
            )
        invitations: list[tuple[bytes, datetime, datetime | None]] = [
            (b"pending", now + hour, None),
            (b"accepted", now + hour, now - hour),
            (b"ran out", now - hour, None),
        ]
        for token, expires_at, accepted_at in invitations:
            session.add(
                Invitation(
                    organisation_id=organisation_id,
                    email="new@example.cz",
                    token_hash=token.ljust(32, b"\0"),
                    expires_at=expires_at,
                    accepted_at=accepted_at,
                )
            )

    assert await housekeeping.forget_expired(sessionmaker, settings, now=now) == 6

    async with sessionmaker() as session:
        member_sessions = await session.scalars(select(MemberSession.token_hash))
        assert [value.rstrip(b"\0") for value in member_sessions] == [b"live"]
        operator_sessions = await session.scalars(select(OperatorSession.token_hash))
        assert [value.rstrip(b"\0") for value in operator_sessions] == [b"live"]
        kept_throttles = await session.scalars(select(LoginThrottle.key_hash))
        assert sorted(value.rstrip(b"\0") for value in kept_throttles) == [b"locked", b"recent"]
        kept_invitations = await session.scalars(select(Invitation.token_hash))
        assert [value.rstrip(b"\0") for value in kept_invitations] == [b"pending"]


def test_the_worker_keeps_house_every_hour() -> None:
    assert worker.keep_house in worker.JOBS
    assert worker.HOUSEKEEPING_INTERVAL <= 3600


async def test_after_housekeeping_no_sent_mail_is_left_in_the_database_files(
    backend: str,
    settings: Settings,
    sessionmaker: Sessionmaker,
    smtp_server: SMTPServer,
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    await submit_with_receipt(settings, sessionmaker, smtp_server)

    await housekeeping.forget_expired(sessionmaker, settings)

    if backend == "postgres":
        _, tuples = await outbox_pages(sessionmaker)
        assert [values for values in tuples if values.get("sealed_message")] == []
        return
    db = Path(settings.resolved_database_url.removeprefix("sqlite+aiosqlite:///"))
    wal = db.with_name(db.name + "-wal")
    async with sessionmaker() as session:
        await session.execute(text("SELECT 1"))
        assert not wal.exists() or wal.stat().st_size == 0
        shutil.copyfile(db, tmp_path / "copy.db")
    for snapshot in sqlite_snapshots(tmp_path / "copy.db", tmp_path / "none", tmp_path / "at"):
        assert snapshot.execute("SELECT count(*) FROM outbox_mail").fetchone() == (0,)


def test_the_generated_secret_key_is_kept_out_of_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # as `make run` starts it in a fresh clone
    for name in ("PISTALKA_SECRET_KEY", "PISTALKA_SECRET_KEY_FILE", "PISTALKA_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()

    key = settings.server_key

    path = settings.secret_key_file.resolve()
    assert path.read_text() == key.hex()
    assert not path.is_relative_to(settings.data_dir.resolve())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not (settings.data_dir / "secret.key").exists()


def test_the_key_of_an_older_installation_moves_out_of_the_data_directory(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "data" / "secret.key"
    legacy.parent.mkdir()
    legacy.write_text("ab" * 32)
    settings = Settings(data_dir=tmp_path / "data", secret_key_file=tmp_path / "keys" / "k")

    assert settings.server_key == bytes.fromhex("ab" * 32)
    assert not legacy.exists()
    assert (tmp_path / "keys" / "k").read_text() == "ab" * 32


async def test_the_sqlite_database_files_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    umask = os.umask(0o022)  # the usual umask: files would be readable by everyone
    try:
        database = tmp_path / "data" / "pistalka.db"
        settings = make_settings(tmp_path / "data", f"sqlite:///{database}")
        await asyncio.to_thread(migrate.upgrade, settings)
        engine = create_engine(settings)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DELETE FROM outbox_mail"))
                files = sorted((tmp_path / "data").iterdir())
                modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}
        finally:
            await engine.dispose()
    finally:
        os.umask(umask)

    assert modes == {"pistalka.db": 0o600, "pistalka.db-shm": 0o600, "pistalka.db-wal": 0o600}
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


async def test_mails_waiting_at_the_upgrade_stay_deliverable_and_sent_ones_are_deleted(
    settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> None:
    await asyncio.to_thread(migrate.downgrade, settings, "20261205b")
    try:
        legacy = sa.table(
            "outbox_mail",
            sa.column("kind", sa.String()),
            sa.column("sealed_message", sa.LargeBinary()),
            sa.column("created_at", UTCDateTime()),
            sa.column("next_attempt_at", UTCDateTime()),
            sa.column("attempts", sa.Integer()),
            sa.column("sent_at", UTCDateTime()),
        )
        now = utcnow()

        def sealed(to: str, key: bytes = mail._key(settings)) -> bytes:
            payload = {"v": 1, "to": to, "subject": "S", "text": "T", "html": None}
            return crypto.seal(key, json.dumps(payload).encode(), LEGACY_OUTBOX_AAD)

        rows: list[dict[str, Any]] = [
            {"kind": "waiting", "sealed_message": sealed("dp@example.cz"), "sent_at": None},
            {"kind": "sent", "sealed_message": None, "sent_at": now},
            {"kind": "unopenable", "sealed_message": sealed("x@example.cz", bytes(32))},
            {"kind": "given up", "sealed_message": sealed("y@example.cz"), "attempts": 20},
        ]
        async with sessionmaker() as session, session.begin():
            for row in rows:
                values = {"created_at": now, "next_attempt_at": now, "attempts": 0, "sent_at": None}
                await session.execute(sa.insert(legacy).values({**values, **row}))
    finally:
        await asyncio.to_thread(migrate.upgrade, settings)

    assert await outbox_kinds(sessionmaker) == ["waiting"]
    working = settings.model_copy(update={"smtp_port": smtp_server.port})
    assert await mail.deliver_due(sessionmaker, working) == 1
    assert [message["To"] for message in smtp_server.messages] == ["dp@example.cz"]
    assert await outbox_kinds(sessionmaker) == []
