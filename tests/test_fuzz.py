"""Property-based fuzzing of the whole JSON API from its OpenAPI document (Schemathesis).

Every operation gets generated requests, half of them aimed at real things: a registered and
verified organisation, its case and file, a logged-in designated person's cookie and a valid
tracking code. Whatever is sent, the answer is never a 5xx, and every error under /api has the
JSON error shape.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import Attachment, Member, Report
from tests.conftest import empty_postgres, make_settings
from tests.factories import login, verified_organisation

MAX_EXAMPLES = 20
BASE = "http://testserver"


class Target:
    """The app in-process on a loop of this test's own, with real things to aim at."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.settings = make_settings(
            tmp_path,
            database_url,
            submissions_per_hour=1_000_000,
            lookups_per_10_minutes=1_000_000,
        )
        self.loop = asyncio.new_event_loop()
        self.app = create_app(self.settings)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)
        self.real: dict[str, str] = {}
        self.email = ""

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def prepare(self) -> None:
        engine = create_engine(self.settings)
        sessionmaker = create_sessionmaker(engine)
        organisation = await verified_organisation(self.client, sessionmaker)
        self.email = organisation["email"]
        submitted = await self.client.post(
            f"/api/v1/public/{organisation['slug']}/reports",
            data={"description": "Invoices for work never done."},
            files={"files": ("invoice.txt", b"invoice 2026/17")},
        )
        assert submitted.status_code == 201
        async with sessionmaker() as session:
            self.real = {
                "slug": organisation["slug"],
                "case_id": str(await session.scalar(select(Report.id))),
                "attachment_id": str(await session.scalar(select(Attachment.id))),
                "member_id": str(await session.scalar(select(Member.id))),
                "code": submitted.json()["tracking_code"],
            }
        await engine.dispose()
        await self.log_in()

    async def log_in(self) -> None:
        assert (await login(self.client, self.email)).status_code == 200

    async def send(self, kwargs: dict[str, Any]) -> httpx.Response:
        # A generated logout or password change may end the session: start a new one.
        if (await self.client.get("/api/v1/auth/me")).status_code == 401:
            await self.log_in()
        kwargs.pop("cookies", None)
        if kwargs.get("data") is None:
            kwargs.pop("data", None)
        return await self.client.request(**kwargs)

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.app.state.engine.dispose())
        self.loop.close()


@pytest.fixture
def target(tmp_path: Path, backend: str, fresh_database: str) -> Iterator[Target]:
    target = Target(tmp_path, fresh_database)
    try:
        target.run(target.prepare())
        yield target
    finally:
        if backend == "postgres":
            target.run(empty_postgres(fresh_database))
        target.close()


def _aimed(case: Any, real: dict[str, str]) -> None:
    """Point the generated request at the real organisation, case, file and tracking code."""
    for name in list(case.path_parameters or {}):
        if name in real:
            case.path_parameters[name] = real[name]
    if case.headers is not None and "X-Tracking-Code" in case.headers:
        case.headers["X-Tracking-Code"] = real["code"]
    if case.query is not None and "organisation" in case.query:
        case.query["organisation"] = real["slug"]


def _check(response: httpx.Response) -> None:
    request = f"{response.request.method} {response.request.url}"
    assert response.status_code < 500, f"{request}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400 and response.request.url.path.startswith("/api/"):
        body = response.json()
        assert set(body) == {"error"}, request
        assert isinstance(body["error"]["code"], str), request
        assert isinstance(body["error"]["message"], str), request


def test_no_generated_request_gets_a_5xx_and_every_error_has_the_json_shape(
    target: Target,
) -> None:
    schema = schemathesis.openapi.from_dict(target.app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 30
    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), aim=st.booleans())
        def fuzz(case: Any, aim: bool) -> None:
            if aim:
                _aimed(case, target.real)
            kwargs = case.as_transport_kwargs(base_url=BASE)
            _check(target.run(target.send(kwargs)))

        fuzz()
