"""Subscriptions: the price list, plan limits, proforma and card orders, renewal, invoices."""

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import httpx
import pytest
from pydantic import SecretStr
from pypdf import PdfReader
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import Invoice, Order, Organisation, OutboxMail, Plan, Subscription
from app.services import billing, mail
from tests.browser import ServerThread, free_port
from tests.factories import login, verified_organisation
from tests.fake_gopay import FakeGoPay
from tests.smtp import SMTPServer
from tests.test_operator import csrf_of, operator_login, totp_secret  # noqa: F401 - fixture

Sessionmaker = async_sessionmaker[AsyncSession]


async def _mail_kinds(sessionmaker: Sessionmaker) -> list[str]:
    async with sessionmaker() as session:
        return sorted(await session.scalars(select(OutboxMail.kind)))


async def _organisation(sessionmaker: Sessionmaker, slug: str) -> Organisation:
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
    assert organisation is not None
    return organisation


async def _clear_outbox(sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(OutboxMail.__table__.delete())  # type: ignore[attr-defined]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def test_price_list_comes_from_the_table(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    page = await client.get("/pricing?lang=en")
    assert page.status_code == 200
    assert re.search(r'id="plan-standard".*?4\s900,00\sKč', page.text, re.S)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Plan).where(Plan.code == "standard").values(price_year=512_300)
        )
        await session.execute(update(Plan).where(Plan.code == "premium").values(active=False))
    page = await client.get("/pricing?lang=en")
    assert re.search(r'id="plan-standard".*?5\s123,00\sKč', page.text, re.S)
    assert 'id="plan-premium"' not in page.text
    assert 'id="plan-free"' in page.text


async def test_operator_edits_the_price_list(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    totp_secret: str,  # noqa: F811
) -> None:
    assert (await operator_login(client, totp_secret)).status_code == 303
    token = csrf_of((await client.get("/operator")).text)
    form = {
        "csrf": token,
        "code": "enterprise",
        "name_cs": "Podnik",
        "name_en": "Enterprise",
        "price_year": "19 900",
        "price_month": "1990,50",
        "vat_rate": "21",
        "max_designated_persons": "50",
        "max_embed_origins": "50",
        "active": "1",
        "sort_order": "3",
    }
    assert (await client.post("/operator/plans", data=form)).status_code == 303
    free = {**form, "code": "free", "price_year": "100"}
    refused = await client.post("/operator/plans?lang=en", data=free)
    assert refused.status_code == 422
    async with sessionmaker() as session:
        plan = await session.scalar(select(Plan).where(Plan.code == "enterprise"))
        free_plan = await session.scalar(select(Plan).where(Plan.code == "free"))
    assert plan is not None
    assert (plan.price_year, plan.price_month) == (1_990_000, 199_050)
    assert free_plan is not None
    assert free_plan.price_year == 0
    page = await client.get("/pricing?lang=en")
    assert 'id="plan-enterprise"' in page.text


async def test_the_free_plan_limits_the_team_but_never_the_reports(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    assert (await login(client, registered["email"])).status_code == 200
    members = f"/api/v1/organisations/{slug}/members"
    assert (await client.post(members, json={"email": "second@example.cz"})).status_code == 202
    refused = await client.post(members, json={"email": "third@example.cz"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "plan_limit"
    settings_url = f"/api/v1/organisations/{slug}/settings"
    current = (await client.get(settings_url)).json()
    body = {
        key: current[key]
        for key in (
            "accepts_anonymous",
            "only_own_people",
            "info_how_to_report",
            "info_designated_persons",
        )
    }
    one = await client.put(settings_url, json={**body, "embed_origins": ["https://www.example.cz"]})
    assert one.status_code == 200
    two = await client.put(
        settings_url,
        json={**body, "embed_origins": ["https://www.example.cz", "https://intranet.example.cz"]},
    )
    assert two.status_code == 409
    assert two.json()["error"]["code"] == "plan_limit"
    for _ in range(3):
        submitted = await client.post(
            f"/api/v1/public/{slug}/reports", json={"description": "A report on any plan."}
        )
        assert submitted.status_code == 201


async def test_proforma_order_through_the_sales_department(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
    totp_secret: str,  # noqa: F811
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    await _clear_outbox(sessionmaker)
    assert (await login(client, registered["email"])).status_code == 200
    page = await client.get(f"/organisations/{slug}/billing?lang=en")
    assert "Current plan: Free" in page.text
    token = csrf_of(page.text)
    details = await client.post(
        f"/organisations/{slug}/billing/details", data={"csrf": token, "dic": "CZ 12345678"}
    )
    assert details.status_code == 303
    card_by_transfer = await client.post(
        f"/organisations/{slug}/billing/order?lang=en",
        data={"csrf": token, "plan": "standard", "term": "recurring", "method": "transfer"},
    )
    assert card_by_transfer.status_code == 422
    ordered = await client.post(
        f"/organisations/{slug}/billing/order",
        data={"csrf": token, "plan": "standard", "term": "year", "method": "transfer"},
    )
    assert ordered.status_code == 303

    client.cookies.clear()
    assert (await operator_login(client, totp_secret)).status_code == 303
    console = await client.get("/operator?lang=en")
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
    assert order is not None
    assert order.status == "requested"
    assert (order.base, order.vat, order.total) == (490_000, 102_900, 592_900)
    assert f'id="order-{order.variable_symbol}"' in console.text
    token = csrf_of(console.text)
    proforma = await client.post(f"/operator/orders/{order.id}/proforma", data={"csrf": token})
    assert proforma.status_code == 303
    paid_on = date.today() - timedelta(days=2)
    future = await client.post(
        f"/operator/orders/{order.id}/paid",
        data={"csrf": token, "paid_on": (date.today() + timedelta(days=5)).isoformat()},
    )
    assert future.status_code == 422
    paid = await client.post(
        f"/operator/orders/{order.id}/paid", data={"csrf": token, "paid_on": paid_on.isoformat()}
    )
    assert paid.status_code == 303
    again = await client.post(
        f"/operator/orders/{order.id}/paid", data={"csrf": token, "paid_on": paid_on.isoformat()}
    )
    assert again.status_code == 303  # recorded once: the order is no longer waiting

    async with sessionmaker() as session:
        subscription = await session.scalar(select(Subscription))
        invoices = list(await session.scalars(select(Invoice).order_by(Invoice.kind)))
    assert subscription is not None
    assert subscription.starts_on == paid_on
    assert subscription.paid_until == billing.add_months(paid_on, 12) - timedelta(days=1)
    assert [(i.kind, i.sequence) for i in invoices] == [("invoice", 1), ("proforma", 1)]
    year = date.today().year
    assert [i.number for i in invoices] == [f"{year}000001", f"ZF{year}000001"]
    text = pdf_text(invoices[0].pdf)
    organisation = await _organisation(sessionmaker, slug)
    for essential in (
        organisation.ico,
        "CZ12345678",
        settings.supplier_ico,
        invoices[0].number,
        order.variable_symbol,
        "5 929,00",
        f"{paid_on.day}. {paid_on.month}. {paid_on.year}",
        "21 %",
    ):
        assert essential in text, essential
    assert "Není daňový doklad" in pdf_text(invoices[1].pdf)

    smtp = settings.model_copy(update={"smtp_port": smtp_server.port})
    await mail.deliver_due(sessionmaker, smtp)
    subjects = [message["Subject"] for message in smtp_server.messages]
    assert any("Proforma invoice ZF" in subject for subject in subjects)
    assert any("Payment received" in subject for subject in subjects)
    assert any(f"Invoice {invoices[0].number} is ready" in subject for subject in subjects)

    # The paid plan's limits apply from the payment on; the invoices are in the profile.
    client.cookies.clear()
    assert (await login(client, registered["email"])).status_code == 200
    page = await client.get(f"/organisations/{slug}/billing?lang=en")
    assert "Current plan: Standard" in page.text
    download = await client.get(f"/organisations/{slug}/billing/invoices/{invoices[0].id}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.content == invoices[0].pdf
    members = f"/api/v1/organisations/{slug}/members"
    for n in range(3):
        invited = await client.post(members, json={"email": f"person{n}@example.cz"})
        assert invited.status_code == 202


@pytest.fixture
async def shop(settings: Settings, fake_gopay: FakeGoPay) -> AsyncIterator[tuple[str, Settings]]:
    """The service on loopback with the (fake) gateway configured: GoPay can call it back."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    configured = settings.model_copy(
        update={
            "public_url": url,
            "gopay_url": fake_gopay.base_url,
            "gopay_goid": fake_gopay.goid,
            "gopay_client_id": fake_gopay.client_id,
            "gopay_client_secret": SecretStr(fake_gopay.client_secret),
        }
    )
    with ServerThread(create_app(configured), port):
        yield url, configured


async def _card_order(
    http: httpx.AsyncClient, sessionmaker: Sessionmaker, term: str
) -> tuple[dict[str, str], Order]:
    registered = await verified_organisation(http, sessionmaker)
    assert (await login(http, registered["email"])).status_code == 200
    slug = registered["slug"]
    page = await http.get(f"/organisations/{slug}/billing")
    ordered = await http.post(
        f"/organisations/{slug}/billing/order",
        data={"csrf": csrf_of(page.text), "plan": "standard", "term": term, "method": "card"},
    )
    assert ordered.status_code == 303
    async with sessionmaker() as session:
        order = await session.scalar(
            select(Order)
            .join(Organisation, Organisation.id == Order.organisation_id)
            .where(Organisation.slug == slug)
        )
    assert order is not None
    assert order.gateway_payment_id is not None
    assert ordered.headers["location"].endswith(str(order.gateway_payment_id))
    return registered, order


async def test_card_payment_notified_twice_is_recorded_once(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, _ = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, order = await _card_order(http, sessionmaker, "year")
        payment_id = order.gateway_payment_id
        assert payment_id is not None
        sent = fake_gopay.payments[payment_id]
        assert (sent.amount, sent.currency) == (order.total, "CZK")
        assert sent.allowed_payment_instruments == ["PAYMENT_CARD"]
        assert sent.recurrence is None
        # Not paid yet: a notification changes nothing; a payment may never complete.
        assert await fake_gopay.notify(payment_id) == [200]
        await _clear_outbox(sessionmaker)
        fake_gopay.pay(payment_id)
        assert await fake_gopay.notify(payment_id, times=2) == [200, 200]
        unknown = await http.get("/api/v1/payments/gopay", params={"id": 999_999})
        assert unknown.status_code == 404
        page = await http.get(f"/organisations/{registered['slug']}/billing?lang=en")
    assert "Current plan: Standard" in page.text
    async with sessionmaker() as session:
        paid = await session.get(Order, order.id)
        invoices = await session.scalar(select(func.count()).select_from(Invoice))
        subscriptions = list(await session.scalars(select(Subscription)))
    assert paid is not None
    assert paid.status == "paid"
    assert paid.paid_on == billing.today()
    assert invoices == 1
    assert len(subscriptions) == 1
    assert subscriptions[0].starts_on == billing.today()
    kinds = await _mail_kinds(sessionmaker)
    assert kinds.count("billing_paid") == 1
    assert kinds.count("billing_invoice") == 1


async def test_a_payment_that_does_not_match_its_order_is_refused(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, _ = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, order = await _card_order(http, sessionmaker, "year")
    payment_id = order.gateway_payment_id
    assert payment_id is not None
    fake_gopay.pay(payment_id)
    fake_gopay.payments[payment_id].amount = 100
    assert await fake_gopay.notify(payment_id) == [409]
    async with sessionmaker() as session:
        unchanged = await session.get(Order, order.id)
    assert unchanged is not None
    assert unchanged.status == "pending"


async def test_recurring_payment_renews_on_the_last_day_and_can_be_stopped(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, order = await _card_order(http, sessionmaker, "recurring")
        parent = order.gateway_payment_id
        assert parent is not None
        assert fake_gopay.payments[parent].recurrence is not None
        fake_gopay.pay(parent)
        assert await fake_gopay.notify(parent) == [200]
        async with sessionmaker() as session:
            subscription = await session.scalar(select(Subscription))
        assert subscription is not None
        first_end = billing.add_months(billing.today(), 1) - timedelta(days=1)
        assert subscription.paid_until == first_end
        assert subscription.gateway_parent_id == parent

        # Not yet due the day before; on the last day of the paid period the card is charged.
        assert await billing.renew_due(sessionmaker, configured, first_end - timedelta(days=1)) == 0
        assert await billing.renew_due(sessionmaker, configured, first_end) == 1
        assert await billing.renew_due(sessionmaker, configured, first_end) == 0
        async with sessionmaker() as session:
            renewed = await session.get(Subscription, subscription.id)
            invoices = await session.scalar(select(func.count()).select_from(Invoice))
        assert renewed is not None
        second_end = billing.add_months(first_end + timedelta(days=1), 1) - timedelta(days=1)
        assert renewed.paid_until == second_end
        assert invoices == 2

        # A declined card: the order fails and the organisation is told.
        await _clear_outbox(sessionmaker)
        fake_gopay.fail_next_recurrence()
        assert await billing.renew_due(sessionmaker, configured, second_end) == 0
        async with sessionmaker() as session:
            failed = await session.scalar(select(Order).where(Order.status == "failed"))
            still = await session.get(Subscription, subscription.id)
        assert failed is not None
        assert still is not None
        assert still.paid_until == second_end
        assert "billing_card_failed" in await _mail_kinds(sessionmaker)

        page = await http.get(f"/organisations/{registered['slug']}/billing")
        stopped = await http.post(
            f"/organisations/{registered['slug']}/billing/stop", data={"csrf": csrf_of(page.text)}
        )
        assert stopped.status_code == 303
    assert fake_gopay.payments[parent].recurrence["recurrence_state"] == "STOPPED"  # type: ignore[index]
    async with sessionmaker() as session:
        kept = await session.get(Subscription, subscription.id)
    assert kept is not None
    assert kept.recurrence_stopped_at is not None
    assert kept.paid_until == second_end  # nothing refunded, nothing cut short
    third_day = second_end + timedelta(days=1)
    assert await billing.renew_due(sessionmaker, configured, third_day) == 0
    # Fourteen days before the end, a plan that will not renew is announced once.
    await _clear_outbox(sessionmaker)
    notice_day = second_end - timedelta(days=14)
    assert await billing.ending_notices(sessionmaker, configured, notice_day) == 1
    assert await billing.ending_notices(sessionmaker, configured, notice_day) == 0
    assert "billing_ending" in await _mail_kinds(sessionmaker)


async def test_invoice_numbers_have_no_gaps_under_concurrent_payments(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    organisation = await _organisation(sessionmaker, registered["slug"])
    async with sessionmaker() as session, session.begin():
        plan = await session.scalar(select(Plan).where(Plan.code == "standard"))
        assert plan is not None
        orders = [
            Order(
                organisation_id=organisation.id,
                plan_id=plan.id,
                term="year",
                method="transfer",
                base=100,
                vat=21,
                total=121,
                vat_rate=21,
                variable_symbol=str(1_000_000_000 + n),
                status="pending",
            )
            for n in range(12)
        ]
        session.add_all(orders)
    engines = [create_engine(settings) for _ in range(4)]

    async def pay(index: int, order_id: uuid.UUID) -> bool:
        async with create_sessionmaker(engines[index % 4])() as session, session.begin():
            return await billing.record_payment(session, settings, order_id, billing.today())

    try:
        results = await asyncio.gather(*(pay(i, order.id) for i, order in enumerate(orders)))
    finally:
        for engine in engines:
            await engine.dispose()
    assert all(results)
    async with sessionmaker() as session:
        numbers = sorted(
            await session.scalars(select(Invoice.sequence).where(Invoice.kind == "invoice"))
        )
    assert numbers == list(range(1, 13))
