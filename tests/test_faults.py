"""Faults: the server killed mid-request, SMTP down, PostgreSQL stopped and started again.

The server runs as a real process (`pistalka serve`), so a SIGKILL leaves what a power cut
would: open transactions, half-sent bodies, connections cut without a goodbye.
"""

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.models import (
    Attachment,
    AttachmentChunk,
    LoginThrottle,
    Organisation,
    Report,
    ReportMessage,
)
from app.models.base import utcnow
from app.models.outbox import OutboxMail
from app.services import auth, courier, mail
from tests.browser import free_port
from tests.factories import DESIGNATED_PERSONS, login, register, submit, verified_organisation
from tests.served import ServedApp
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]
CLIENTS = 6
KILL_AFTER_CODES = 12


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[ServedApp]:
    app = ServedApp(tmp_path / "served", database_url)
    try:
        yield app.start()
    finally:
        app.stop()


@dataclass
class Sent:
    description: str
    file: bytes | None
    code: str = ""


@dataclass
class Stream:
    """What the clients sent and what answered with a tracking code before the kill."""

    answered: list[Sent] = field(default_factory=list)
    unanswered: int = 0


async def _submit_until_cut(url: str, slug: str, stream: Stream, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for n in range(500):  # bounded even if the kill never came
            if stop.is_set():
                return
            sent = Sent(description=f"Report {secrets.token_hex(8)}", file=None)
            try:
                if n % 2:
                    sent.file = secrets.token_bytes(300 * 1024)
                    response = await http.post(
                        f"/api/v1/public/{slug}/reports",
                        data={"description": sent.description},
                        files={"files": ("evidence.bin", sent.file)},
                    )
                else:
                    response = await http.post(
                        f"/api/v1/public/{slug}/reports", json={"description": sent.description}
                    )
            except httpx.TransportError:
                stream.unanswered += 1
                return
            assert response.status_code == 201, response.text
            sent.code = response.json()["tracking_code"]
            stream.answered.append(sent)


async def _counts(sessionmaker: Sessionmaker) -> dict[str, int]:
    async with sessionmaker() as session:
        return {
            "reports": await session.scalar(select(func.count()).select_from(Report)) or 0,
            "messages": await session.scalar(select(func.count()).select_from(ReportMessage)) or 0,
            "attachments": await session.scalar(select(func.count()).select_from(Attachment)) or 0,
            "chunks": await session.scalar(select(func.count()).select_from(AttachmentChunk)) or 0,
        }


async def _assert_no_half_written_files(sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        incomplete = await session.scalar(
            select(func.count()).select_from(Attachment).where(Attachment.complete.is_(False))
        )
        assert incomplete == 0
        rows = await session.execute(
            select(Attachment.id, Attachment.chunk_count, func.count(AttachmentChunk.id))
            .outerjoin(AttachmentChunk, AttachmentChunk.attachment_id == Attachment.id)
            .group_by(Attachment.id, Attachment.chunk_count)
        )
        for attachment_id, chunk_count, stored in rows:
            assert stored == chunk_count, attachment_id
        orphans = await session.scalar(
            select(func.count())
            .select_from(AttachmentChunk)
            .where(~AttachmentChunk.attachment_id.in_(select(Attachment.id)))
        )
        assert orphans == 0


async def _designated_persons_cases(client: httpx.AsyncClient, email: str) -> list[str]:
    """The description of every case, as the designated person reads it."""
    assert (await login(client, email)).status_code == 200
    listed = await client.get("/api/v1/cases")
    assert listed.status_code == 200
    descriptions = []
    for item in listed.json()["items"]:
        case = await client.get(
            f"/api/v1/cases/{item['id']}", headers={"X-Access-Reason": "Checking after a crash"}
        )
        assert case.status_code == 200, case.text
        descriptions.append(case.json()["report"]["description"])
    return descriptions


async def test_reports_answered_before_a_sigkill_are_whole_and_nothing_is_half_written(
    served: ServedApp, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    stream, stop = Stream(), asyncio.Event()
    tasks = [
        asyncio.create_task(_submit_until_cut(served.url, organisation["slug"], stream, stop))
        for _ in range(CLIENTS)
    ]
    async with asyncio.timeout(120):
        while len(stream.answered) < KILL_AFTER_CODES:
            assert not all(task.done() for task in tasks), "the clients stopped early"
            await asyncio.sleep(0.005)
    served.kill()
    stop.set()
    await asyncio.gather(*tasks)
    assert stream.unanswered > 0, "the kill cut no request: nothing was tested mid-stream"

    served.start()
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        for sent in stream.answered:
            view = await http.get(
                "/api/v1/public/reports/self", headers={"X-Tracking-Code": sent.code}
            )
            assert view.status_code == 200, view.text
            assert view.json()["report"]["description"] == sent.description
            files = view.json()["attachments"]
            if sent.file is None:
                assert files == []
                continue
            [attachment] = files
            download = await http.get(
                f"/api/v1/public/reports/self/files/{attachment['id']}",
                headers={"X-Tracking-Code": sent.code},
            )
            assert download.status_code == 200
            assert download.content == sent.file

    counts = await _counts(sessionmaker)
    # A request cut after its commit but before its answer leaves a whole report without a code.
    assert len(stream.answered) <= counts["reports"] <= len(stream.answered) + stream.unanswered
    await _assert_no_half_written_files(sessionmaker)
    descriptions = await _designated_persons_cases(client, organisation["email"])
    assert len(descriptions) == counts["reports"]
    assert {sent.description for sent in stream.answered} <= set(descriptions)
    assert all(d.startswith("Report ") for d in descriptions)


async def _slow_body(body: bytes, half_sent: asyncio.Event) -> AsyncIterator[bytes]:
    piece = 256 * 1024
    for start in range(0, len(body), piece):
        if start >= len(body) // 2 and not half_sent.is_set():
            half_sent.set()
            await asyncio.sleep(0.5)  # time for the kill to land mid-body
        yield body[start : start + piece]


def _multipart(fields: dict[str, str], file: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + file
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def _chunk_insert_running(sessionmaker: Sessionmaker) -> bool:
    async with sessionmaker() as session:
        running = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE query LIKE 'INSERT INTO attachment_chunk%' AND pid <> pg_backend_pid()"
            )
        )
    return bool(running)


@pytest.fixture
def big_files(tmp_path: Path, database_url: str) -> Iterator[ServedApp]:
    """A server that takes files large enough to be killed while it stores one."""
    app = ServedApp(tmp_path / "served", database_url, max_file_bytes=48 * 1024 * 1024)
    try:
        yield app.start()
    finally:
        app.stop()


@pytest.mark.parametrize("moment", ["while_uploading", "while_storing"])
async def test_sigkill_during_a_file_upload_leaves_no_trace_of_the_message(
    moment: str,
    backend: str,
    database_url: str,
    big_files: ServedApp,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    code = (await submit(client, organisation["slug"]))["tracking_code"]
    before = await _counts(sessionmaker)
    wal = Path(database_url.removeprefix("sqlite:///") + "-wal")
    wal_before = wal.stat().st_size if backend == "sqlite" and wal.exists() else 0
    body, content_type = _multipart({"body": "Here is the contract."}, os.urandom(40 * 1024**2))
    half_sent = asyncio.Event()

    async def send() -> None:
        async with httpx.AsyncClient(base_url=big_files.url, timeout=120) as http:
            with contextlib.suppress(httpx.TransportError):
                response = await http.post(
                    "/api/v1/public/reports/self/messages",
                    content=_slow_body(body, half_sent),
                    headers={"X-Tracking-Code": code, "Content-Type": content_type},
                )
                pytest.fail(f"the request was answered before the kill: {response.status_code}")

    sender = asyncio.create_task(send())
    async with asyncio.timeout(120):
        if moment == "while_uploading":
            await half_sent.wait()
        elif backend == "postgres":
            while not await _chunk_insert_running(sessionmaker):
                assert not sender.done()
                await asyncio.sleep(0.005)
        else:
            # SQLite spills a large uncommitted transaction into its write-ahead log.
            while not wal.exists() or wal.stat().st_size < wal_before + 8 * 1024**2:
                assert not sender.done()
                await asyncio.sleep(0.005)
    big_files.kill()
    await sender

    assert await _counts(sessionmaker) == before
    big_files.start()
    async with httpx.AsyncClient(base_url=big_files.url, timeout=60) as http:
        view = await http.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
        assert view.status_code == 200
        assert view.json()["messages"] == []
        assert view.json()["attachments"] == []
        # The restarted service takes the same message whole.
        again = await http.post(
            "/api/v1/public/reports/self/messages",
            data={"body": "Here is the contract."},
            files={"files": ("small.bin", b"contract")},
            headers={"X-Tracking-Code": code},
        )
        assert again.status_code == 201, again.text
        assert [m["body"] for m in again.json()["messages"]] == ["Here is the contract."]
    await _assert_no_half_written_files(sessionmaker)


async def test_a_file_never_marked_complete_is_neither_listed_nor_served(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    # The code stores a file and marks it complete in one transaction, so a crash leaves no
    # such row; should one ever be written (by an older version, by hand), nobody is shown it.
    organisation = await verified_organisation(client, sessionmaker)
    code = (await submit(client, organisation["slug"]))["tracking_code"]
    async with sessionmaker() as session, session.begin():
        report = await session.scalar(select(Report))
        assert report is not None
        attachment = Attachment(
            organisation_id=report.organisation_id,
            report_id=report.id,
            uploaded_by="whistleblower",
            sealed_meta=b"\x01half",
            chunk_count=1,
            complete=False,
        )
        session.add(attachment)
        await session.flush()
        session.add(AttachmentChunk(attachment_id=attachment.id, index=0, data=b"\x01half"))
    headers = {"X-Tracking-Code": code}

    view = await client.get("/api/v1/public/reports/self", headers=headers)
    assert view.status_code == 200
    assert view.json()["attachments"] == []
    download = await client.get(
        f"/api/v1/public/reports/self/files/{attachment.id}", headers=headers
    )
    assert download.status_code == 404
    assert (await login(client, organisation["email"])).status_code == 200
    reason = {"X-Access-Reason": "Checking the files"}
    case = await client.get(f"/api/v1/cases/{report.id}", headers=reason)
    assert case.status_code == 200
    assert case.json()["attachments"] == []
    files = await client.get(f"/api/v1/cases/{report.id}/files/{attachment.id}", headers=reason)
    assert files.status_code == 404


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, so stopping it disturbs nobody else's database."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its parents are private to root, and postgres runs it.
        self.directory = Path(tempfile.mkdtemp(prefix="pistalka-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)  # noqa: S603
        assert result.returncode == 0, result.stdout + result.stderr

    def init(self) -> None:
        data = str(self.directory / "data")
        self._run(str(PG_BIN / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-o", options,
            "-l", str(self.directory / "log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast",
                  "-w", "-t", "60", "stop")  # fmt: skip

    def _processes(self) -> list[int]:
        """The postmaster and every backend and auxiliary process it started."""
        postmaster = int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(  # noqa: S603
            ["/usr/bin/pgrep", "-P", str(postmaster)], capture_output=True, text=True, timeout=10
        ).stdout.split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        """SIGSTOP the whole cluster: connections stay open, nothing answers on them."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.thaw()
        with contextlib.suppress(AssertionError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists() or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI needs PostgreSQL 15 and root for the private cluster")
        pytest.skip("needs PostgreSQL 15's initdb and root (to run it as postgres)")
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def _assert_unavailable_json(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["message"]


async def test_outage_of_postgresql_answers_503_and_the_service_recovers_by_itself(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    served = ServedApp(tmp_path / "served", private_postgres.url).start()
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
            registered = await register(http)
            engine = create_async_engine(
                Settings(database_url=private_postgres.url).resolved_database_url
            )
            async with engine.begin() as connection:
                await connection.execute(
                    update(Organisation).values(
                        email_verified_at=utcnow(), info_designated_persons=DESIGNATED_PERSONS
                    )
                )
            await engine.dispose()
            slug = registered["slug"]
            code = (await submit(http, slug))["tracking_code"]
            assert (await login(http, registered["email"])).status_code == 200
            wb = {"X-Tracking-Code": code}

            private_postgres.stop()
            _assert_unavailable_json(await http.get("/api/v1/cases"))
            _assert_unavailable_json(await http.get("/api/v1/public/reports/self", headers=wb))
            _assert_unavailable_json(
                await http.post(f"/api/v1/public/{slug}/reports", json={"description": "Lost?"})
            )
            for path in (f"/{slug}", "/cases", "/healthz"):
                page = await http.get(path)
                assert page.status_code == 503, path
            page = await http.get(f"/{slug}")
            assert page.headers["content-type"].startswith("text/html")
            assert "Traceback" not in page.text
            assert "<h1>" in page.text

            private_postgres.start()
            async with asyncio.timeout(60):
                while (await http.get("/healthz")).status_code != 200:
                    await asyncio.sleep(0.2)
            cases = await http.get("/api/v1/cases")
            assert cases.status_code == 200
            assert len(cases.json()["items"]) == 1
            assert (await http.get("/api/v1/public/reports/self", headers=wb)).status_code == 200
            await submit(http, slug, description="After the outage.")
            assert len((await http.get("/api/v1/cases")).json()["items"]) == 2
    finally:
        served.stop()
    assert "Traceback" not in served.log.read_text()


async def _timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def test_a_frozen_postgresql_answers_503_within_seconds_and_commits_nothing_later(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    served = ServedApp(tmp_path / "served", private_postgres.url).start()
    engine = create_async_engine(Settings(database_url=private_postgres.url).resolved_database_url)
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
            registered = await register(http)
            async with engine.begin() as connection:
                await connection.execute(
                    update(Organisation).values(
                        email_verified_at=utcnow(), info_designated_persons=DESIGNATED_PERSONS
                    )
                )
            await engine.dispose()
            slug = registered["slug"]
            await submit(http, slug)
            report = {"description": "Sent while the database was frozen."}

            private_postgres.freeze()
            try:
                # The pool's open connections hang first, then new ones that never get past
                # the startup handshake: each wait is bounded.
                for _ in range(3):
                    health, seconds = await _timed(http.get("/healthz"))
                    assert health.status_code == 503, health.text
                    assert seconds < 10
                    sent, seconds = await _timed(
                        http.post(f"/api/v1/public/{slug}/reports", json=report)
                    )
                    _assert_unavailable_json(sent)
                    assert seconds < 10
                page, seconds = await _timed(http.get(f"/{slug}"))
                assert page.status_code == 503
                assert page.headers["content-type"].startswith("text/html")
                assert seconds < 10
            finally:
                private_postgres.thaw()

            async with asyncio.timeout(60):
                while (await http.get("/healthz")).status_code != 200:
                    await asyncio.sleep(0.2)
            async with engine.connect() as connection:
                await asyncio.sleep(2)  # time for anything still queued in the server to run
                descriptions = await connection.scalar(select(func.count()).select_from(Report))
            assert descriptions == 1, "a report answered with 503 was committed afterwards"
            await submit(http, slug, description="After the freeze.")
    finally:
        await engine.dispose()
        served.stop()
    assert "Traceback" not in served.log.read_text()


async def test_a_receipt_asked_for_while_smtp_is_down_is_sent_once_when_it_is_back(
    settings: Settings,
    sessionmaker: Sessionmaker,
    free_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(courier, "RETRY_BASE", timedelta(seconds=0.05))
    down = settings.model_copy(update={"smtp_port": free_port})
    app = create_app(down)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        organisation = await verified_organisation(client, sessionmaker)
        submitted = await submit(
            client, organisation["slug"], description="Cash payments.", email="wb@example.org"
        )
    assert await mail.deliver_due(sessionmaker, down) == 0  # nothing listens: all wait
    async with sessionmaker() as session:
        kinds = sorted(await session.scalars(select(OutboxMail.kind)))
    # The address check and the organisation's notice; the receipt waits in memory only.
    assert kinds == ["new_report", "verify_email"]
    await asyncio.sleep(0.3)  # a few of the receipt's attempts fail meanwhile

    server = SMTPServer(port=free_port)
    server.start()
    try:
        later = utcnow() + mail.backoff(1) + timedelta(seconds=1)
        for _ in range(3):  # the worker's next rounds, and more of them than needed
            await mail.deliver_due(sessionmaker, down, now=later)
        await server.wait_for(3, timeout=30)
        await asyncio.sleep(0.3)
    finally:
        server.stop()
        await app.state.engine.dispose()
    assert len(server.messages) == 3
    receipts = [m for m in server.messages if m["To"] == "wb@example.org"]
    assert len(receipts) == 1
    receipt = receipts[0].get_content()
    assert submitted["tracking_url"] in receipt
    assert "Cash payments." not in receipt
    for message in server.messages:
        if message["To"] != "wb@example.org":
            assert submitted["tracking_code"] not in message.get_content()


@contextlib.asynccontextmanager
async def _app_with_one_connection(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """The app over a pool of a single connection that waits briefly for it."""
    app = create_app(settings)
    engine = create_async_engine(
        settings.resolved_database_url, pool_size=1, max_overflow=0, pool_timeout=0.3
    )
    app.state.sessionmaker = create_sessionmaker(engine, settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, engine
    finally:
        await engine.dispose()
        await app.state.engine.dispose()


async def test_a_request_that_waits_too_long_for_a_connection_answers_503(
    settings: Settings,
) -> None:
    async with _app_with_one_connection(settings) as (client, engine):
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            api = await client.post(
                "/api/v1/auth/login", json={"email": "a@example.cz", "password": "x"}
            )
            _assert_unavailable_json(api)
            assert api.headers["Retry-After"] == "30"
            page = await client.get("/some-organisation")
            assert page.status_code == 503
            assert page.headers["content-type"].startswith("text/html")
            assert "<h1>" in page.text
        # The connection is back: the same request is answered.
        assert (await client.get("/some-organisation")).status_code == 404


async def _wait_for_lock_and_terminate(admin: AsyncConnection, database: str) -> None:
    """Terminate the backend that waits for a row lock, as a server shutting down would."""
    async with asyncio.timeout(10):
        while True:
            pid = await admin.scalar(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :db "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            )
            if pid is not None:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                return
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/login"])
async def test_a_connection_terminated_by_the_server_answers_503(
    backend: str, settings: Settings, path: str
) -> None:
    if backend != "postgres":
        pytest.skip("SQLSTATE 57P01 is PostgreSQL's")
    email = "someone@example.cz"
    holder = create_async_engine(settings.resolved_database_url)
    try:
        async with holder.connect() as locker, holder.connect() as admin:
            await admin.execution_options(isolation_level="AUTOCOMMIT")
            database = await admin.scalar(text("SELECT current_database()"))
            # The login's throttle row, inserted and not committed: the login waits on its lock.
            await locker.execute(
                insert(LoginThrottle).values(
                    key_hash=auth._throttle_key(settings, email),
                    failures=0,
                    last_failed_at=utcnow(),
                )
            )
            async with _app_with_one_connection(settings) as (client, _engine):
                body = {"email": email, "password": "whatever"}
                request = (
                    client.post(path, json=body)
                    if path.startswith("/api/")
                    else client.post(path, data=body)
                )
                response, _ = await asyncio.gather(
                    request, _wait_for_lock_and_terminate(admin, database)
                )
                assert response.status_code == 503, response.text
                if path.startswith("/api/"):
                    _assert_unavailable_json(response)
                else:
                    assert response.headers["content-type"].startswith("text/html")
                    assert "Traceback" not in response.text
                await locker.rollback()
                # The pool replaces the dead connection: the next login is answered.
                assert (await client.post(path, json=body) if path.startswith("/api/")
                        else await client.post(path, data=body)).status_code == 401  # fmt: skip
    finally:
        await holder.dispose()
