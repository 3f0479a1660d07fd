"""/metrics: who may read it, and that it names route templates, never what a path carries."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.main import create_app
from app.models.outbox import OutboxMail
from tests.conftest import make_settings
from tests.factories import login, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
TOKEN = "a metrics token of the test"  # noqa: S105


@asynccontextmanager
async def _client_from(
    tmp_path: Path, database_url: str, peer: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, database_url, metrics_token=TOKEN))
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await app.state.engine.dispose()


def _sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_metrics_refuse_another_address_without_the_token(
    tmp_path: Path, database_url: str
) -> None:
    async with _client_from(tmp_path, database_url, peer="192.0.2.7") as client:
        assert (await client.get("/metrics")).status_code == 403
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 403
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        assert "pistalka_http_requests_total" in right.text


async def test_a_request_a_proxy_forwarded_from_loopback_needs_the_token(
    tmp_path: Path, database_url: str
) -> None:
    async with _client_from(tmp_path, database_url) as client:
        assert (await client.get("/metrics")).status_code == 200
        forwarded = await client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
        assert forwarded.status_code == 403


async def test_metrics_name_route_templates_never_slugs_or_tracking_codes(
    tmp_path: Path, database_url: str, sessionmaker: Sessionmaker
) -> None:
    async with _client_from(tmp_path, database_url) as client:
        organisation = await verified_organisation(client, sessionmaker)
        code = (await submit(client, organisation["slug"]))["tracking_code"]
        assert (await client.get(f"/track/{code}")).status_code == 200
        await client.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
        text = (await client.get("/metrics")).text
    assert organisation["slug"] not in text
    assert code not in text
    assert code.replace("-", "") not in text
    assert 'route="/api/v1/public/{slug}/reports"' in text
    assert 'route="/track/{code}"' in text


async def test_metrics_count_a_request_the_outbox_and_a_failed_login(
    tmp_path: Path, database_url: str, sessionmaker: Sessionmaker
) -> None:
    async with _client_from(tmp_path, database_url) as client:
        organisation = await verified_organisation(client, sessionmaker)
        before = (await client.get("/metrics")).text
        assert (await client.get("/healthz")).status_code == 200
        assert (await login(client, organisation["email"], "not the password")).status_code == 401
        after = (await client.get("/metrics")).text
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    counted = _sample(after, "pistalka_http_requests_total", **healthz)
    assert counted == _sample(before, "pistalka_http_requests_total", **healthz) + 1
    failed = {"code": "invalid_credentials"}
    failures = _sample(after, "pistalka_login_failures_total", **failed)
    assert failures == _sample(before, "pistalka_login_failures_total", **failed) + 1
    async with sessionmaker() as session:
        waiting = await session.scalar(select(func.count()).select_from(OutboxMail))
    assert waiting
    assert _sample(after, "pistalka_outbox_mails") == waiting
    assert _sample(after, "pistalka_outbox_oldest_age_seconds") >= 0
