"""Subscriptions: the price list, plan limits, proforma and card orders, renewal, invoices."""

import asyncio
import io
import json
import logging
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
from app.errors import Conflict
from app.main import create_app
from app.models import Invoice, Order, Organisation, OutboxMail, Plan, Subscription
from app.models.base import utcnow
from app.services import billing, leaving, mail
from app.services.billing import invoices, plans, renewals
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


async def _order_status(sessionmaker: Sessionmaker, order_id: uuid.UUID) -> str:
    async with sessionmaker() as session:
        order = await session.get(Order, order_id)
    assert order is not None
    return order.status


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
    assert await _order_status(sessionmaker, order.id) == "pending"


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


# Helpers of the tests below: a running recurrence, orders by transfer, delivered mails.


async def _recurring(
    http: httpx.AsyncClient, sessionmaker: Sessionmaker, fake_gopay: FakeGoPay
) -> tuple[dict[str, str], Subscription]:
    registered, order = await _card_order(http, sessionmaker, "recurring")
    parent = order.gateway_payment_id
    assert parent is not None
    fake_gopay.pay(parent)
    assert await fake_gopay.notify(parent) == [200]
    async with sessionmaker() as session:
        subscription = await session.scalar(
            select(Subscription).where(Subscription.organisation_id == order.organisation_id)
        )
    assert subscription is not None
    return registered, subscription


async def _renewals(sessionmaker: Sessionmaker, subscription: Subscription) -> list[Order]:
    async with sessionmaker() as session:
        orders = await session.scalars(
            select(Order)
            .where(
                Order.subscription_id == subscription.id,
                Order.gateway_payment_id.is_distinct_from(subscription.gateway_parent_id),
            )
            .order_by(Order.created_at)
        )
        return list(orders)


async def _subscription(sessionmaker: Sessionmaker, subscription_id: uuid.UUID) -> Subscription:
    async with sessionmaker() as session:
        subscription = await session.get(Subscription, subscription_id)
    assert subscription is not None
    return subscription


def _month_after(paid_until: date) -> date:
    return billing.add_months(paid_until + timedelta(days=1), 1) - timedelta(days=1)


async def _order_by_transfer(
    sessionmaker: Sessionmaker, settings: Settings, organisation_id: uuid.UUID
) -> Order:
    async with sessionmaker() as session, session.begin():
        organisation = await session.get(Organisation, organisation_id)
        assert organisation is not None
        order, _ = await billing.place_order(
            session, settings, organisation, plan_code="standard", term="year", method="transfer"
        )
    return order


async def _paid_by_transfer(
    sessionmaker: Sessionmaker, settings: Settings, organisation_id: uuid.UUID, paid_on: date
) -> Order:
    order = await _order_by_transfer(sessionmaker, settings, organisation_id)
    async with sessionmaker() as session, session.begin():
        await billing.issue_proforma(session, settings, order.id)
    async with sessionmaker() as session, session.begin():
        assert await billing.record_payment(session, settings, order.id, paid_on)
    return order


async def _delivered(
    sessionmaker: Sessionmaker, settings: Settings, smtp_server: SMTPServer
) -> dict[str, str]:
    """The mails delivered so far: the body of each by its subject."""
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    bodies = {}
    for message in smtp_server.messages:
        body = message.get_body(("plain",))
        assert body is not None
        bodies[str(message["Subject"])] = str(body.get_content())
    return bodies


def _one(bodies: dict[str, str], subject_part: str) -> str:
    found = [body for subject, body in bodies.items() if subject_part in subject]
    assert len(found) == 1, (subject_part, list(bodies))
    return found[0]


# 1. A renewal charges the card once, whatever fails after the charge.


async def test_a_failure_after_the_renewal_charge_does_not_charge_again(
    shop: tuple[str, Settings],
    fake_gopay: FakeGoPay,
    sessionmaker: Sessionmaker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, subscription = await _recurring(http, sessionmaker, fake_gopay)
    due = subscription.paid_until

    quoted = "-".join(("values", "quoted", "by", "the", "error"))

    def broken(document: object) -> bytes:
        raise RuntimeError(quoted)

    monkeypatch.setattr(invoices, "render_invoice", broken)
    with caplog.at_level(logging.ERROR, logger="pistalka.billing"):
        assert await billing.renew_due(sessionmaker, configured, due) == 0
    assert "renewal failed: RuntimeError" in caplog.text
    assert quoted not in caplog.text
    assert fake_gopay.recurrence_charges == 1
    [renewal] = await _renewals(sessionmaker, subscription)
    assert renewal.status == "pending"
    assert renewal.gateway_payment_id is not None
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == due

    monkeypatch.undo()
    assert await billing.renew_due(sessionmaker, configured, due) == 0
    assert await billing.renew_due(sessionmaker, configured, due) == 0
    assert fake_gopay.recurrence_charges == 1
    [renewal] = await _renewals(sessionmaker, subscription)
    assert renewal.status == "paid"
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == _month_after(due)


async def test_a_renewal_charge_without_an_answer_waits_for_the_notification(
    shop: tuple[str, Settings],
    fake_gopay: FakeGoPay,
    sessionmaker: Sessionmaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, subscription = await _recurring(http, sessionmaker, fake_gopay)
    due = subscription.paid_until
    await _clear_outbox(sessionmaker)
    monkeypatch.setattr(plans, "GATEWAY_TIMEOUT_SECONDS", 0.5)
    fake_gopay.answer_next_recurrence_late(3)

    assert await billing.renew_due(sessionmaker, configured, due) == 0
    [renewal] = await _renewals(sessionmaker, subscription)
    assert (renewal.status, renewal.gateway_payment_id) == ("pending", None)
    assert await _mail_kinds(sessionmaker) == []  # not a failure: the card may be charged
    assert await billing.renew_due(sessionmaker, configured, due) == 0
    assert fake_gopay.recurrence_charges == 1

    [charged] = [p for p in fake_gopay.payments.values() if p.parent_id is not None]
    assert charged.parent_id == subscription.gateway_parent_id
    assert await fake_gopay.notify(charged.id) == [200]
    [renewal] = await _renewals(sessionmaker, subscription)
    assert (renewal.status, renewal.gateway_payment_id) == ("paid", charged.id)
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == _month_after(due)
    assert fake_gopay.recurrence_charges == 1


async def test_a_renewal_answered_created_is_completed_by_its_notification(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, subscription = await _recurring(http, sessionmaker, fake_gopay)
    due = subscription.paid_until
    fake_gopay.complete_recurrences_later()

    assert await billing.renew_due(sessionmaker, configured, due) == 1
    [renewal] = await _renewals(sessionmaker, subscription)
    payment_id = renewal.gateway_payment_id
    assert payment_id is not None
    assert renewal.status == "pending"
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == due
    # The next run only asks: the payment is still being made.
    assert await billing.renew_due(sessionmaker, configured, due) == 0
    assert fake_gopay.recurrence_charges == 1

    fake_gopay.pay(payment_id)
    assert fake_gopay.payments[payment_id].parent_id == subscription.gateway_parent_id
    assert await fake_gopay.notify(payment_id) == [200]
    [renewal] = await _renewals(sessionmaker, subscription)
    assert renewal.status == "paid"
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == _month_after(due)
    async with sessionmaker() as session:
        invoices = await session.scalar(select(func.count()).select_from(Invoice))
    assert invoices == 2


async def test_a_renewal_declined_as_a_canceled_payment_fails_and_tells_the_organisation(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, subscription = await _recurring(http, sessionmaker, fake_gopay)
    due = subscription.paid_until
    await _clear_outbox(sessionmaker)
    fake_gopay.fail_next_recurrence(as_canceled_payment=True)

    assert await billing.renew_due(sessionmaker, configured, due) == 0
    assert await billing.renew_due(sessionmaker, configured, due) == 0
    [renewal] = await _renewals(sessionmaker, subscription)
    assert renewal.status == "failed"
    assert fake_gopay.recurrence_charges == 1
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == due
    assert "billing_card_failed" in await _mail_kinds(sessionmaker)


# 2. No second order over a running recurrence; paid days are never lost.


async def test_a_new_order_is_refused_while_a_recurring_payment_runs(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, _ = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, _ = await _recurring(http, sessionmaker, fake_gopay)
        slug = registered["slug"]
        page = await http.get(f"/organisations/{slug}/billing?lang=en")
        form = {"csrf": csrf_of(page.text), "plan": "premium", "term": "year", "method": "card"}
        english = await http.post(f"/organisations/{slug}/billing/order?lang=en", data=form)
        czech = await http.post(f"/organisations/{slug}/billing/order?lang=cs", data=form)
        stopped = await http.post(
            f"/organisations/{slug}/billing/stop", data={"csrf": form["csrf"]}
        )
        after_stop = await http.post(f"/organisations/{slug}/billing/order", data=form)
    assert 'id="recurrence-active"' in page.text
    assert 'name="term"' not in page.text
    assert english.status_code == 409
    assert "Stop the recurring payment before ordering another plan" in english.text
    assert czech.status_code == 409
    assert "Před objednáním jiného tarifu opakovanou platbu zastavte" in czech.text
    assert stopped.status_code == 303
    assert after_stop.status_code == 303


async def test_a_year_ordered_during_a_paid_period_starts_after_it(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    organisation = await _organisation(sessionmaker, registered["slug"])
    first_paid = billing.today() - timedelta(days=30)
    await _paid_by_transfer(sessionmaker, settings, organisation.id, first_paid)
    await _paid_by_transfer(sessionmaker, settings, organisation.id, billing.today())
    async with sessionmaker() as session:
        first, second = list(
            await session.scalars(select(Subscription).order_by(Subscription.starts_on))
        )
    assert first.starts_on == first_paid
    assert second.starts_on == first.paid_until + timedelta(days=1)
    assert second.paid_until == billing.add_months(second.starts_on, 12) - timedelta(days=1)
    assert (await _order_by_transfer(sessionmaker, settings, organisation.id)).status == (
        "requested"
    )
    assert (await login(client, registered["email"])).status_code == 200
    page = await client.get(f"/organisations/{registered['slug']}/billing?lang=en")
    next_start = second.paid_until + timedelta(days=1)
    assert f"A plan ordered now starts on {next_start.strftime('%d. %m. %Y')}" in page.text


async def test_no_ending_notice_when_the_following_period_is_paid(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    organisation = await _organisation(sessionmaker, registered["slug"])
    await _paid_by_transfer(
        sessionmaker, settings, organisation.id, billing.today() - timedelta(days=300)
    )
    async with sessionmaker() as session:
        first = await session.scalar(select(Subscription))
    assert first is not None
    notice_day = first.paid_until - timedelta(days=14)
    await _paid_by_transfer(sessionmaker, settings, organisation.id, billing.today())
    await _clear_outbox(sessionmaker)

    assert await billing.ending_notices(sessionmaker, settings, notice_day) == 0
    assert await _mail_kinds(sessionmaker) == []
    async with sessionmaker() as session:
        second = await session.scalar(select(Subscription).where(Subscription.id != first.id))
    assert second is not None
    assert (
        await billing.ending_notices(sessionmaker, settings, second.paid_until - timedelta(days=14))
        == 1
    )


# 3. Leaving stops the card; the invoices stay as tax documents.


async def test_cancelling_the_registration_stops_the_card_recurrence(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, subscription = await _recurring(http, sessionmaker, fake_gopay)
        cancelled = await http.post(f"/api/v1/organisations/{registered['slug']}/cancellation")
    assert cancelled.status_code == 200
    parent = subscription.gateway_parent_id
    assert parent is not None
    assert fake_gopay.payments[parent].recurrence["recurrence_state"] == "STOPPED"  # type: ignore[index]
    stopped = await _subscription(sessionmaker, subscription.id)
    assert stopped.recurrence_stopped_at is not None
    assert stopped.paid_until == subscription.paid_until  # nothing refunded
    assert await billing.renew_due(sessionmaker, configured, subscription.paid_until) == 0
    assert fake_gopay.recurrence_charges == 0


async def test_cancelling_while_the_gateway_fails_still_ends_the_charges(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, subscription = await _recurring(http, sessionmaker, fake_gopay)
        fake_gopay.fail_next(500)
        cancelled = await http.post(f"/api/v1/organisations/{registered['slug']}/cancellation")
    assert cancelled.status_code == 200
    assert (await _subscription(sessionmaker, subscription.id)).recurrence_stopped_at is not None
    assert await billing.renew_due(sessionmaker, configured, subscription.paid_until) == 0
    assert fake_gopay.recurrence_charges == 0


async def test_invoices_outlive_the_erased_organisation_and_numbering_continues(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    leaving_org = await verified_organisation(client, sessionmaker)
    staying = await verified_organisation(client, sessionmaker)
    organisation = await _organisation(sessionmaker, leaving_org["slug"])
    await _paid_by_transfer(sessionmaker, settings, organisation.id, billing.today())
    async with sessionmaker() as session:
        issued = {i.number: i.pdf for i in await session.scalars(select(Invoice))}
    assert (await login(client, leaving_org["email"])).status_code == 200
    cancelled = await client.post(f"/api/v1/organisations/{leaving_org['slug']}/cancellation")
    assert cancelled.status_code == 200
    cancelled_at = (await _organisation(sessionmaker, leaving_org["slug"])).cancelled_at
    assert cancelled_at is not None
    window_end = cancelled_at + timedelta(days=leaving.EXPORT_WINDOW_DAYS)
    assert await leaving.erase_cancelled(sessionmaker, window_end + timedelta(minutes=1)) == 1

    async with sessionmaker() as session:
        kept = list(await session.scalars(select(Invoice)))
        orders = await session.scalar(select(func.count()).select_from(Order))
    assert orders == 0
    assert {i.number: i.pdf for i in kept} == issued
    assert all(i.organisation_id is None and i.order_id is None for i in kept)
    for invoice in kept:
        customer = json.loads(invoice.document)["customer"]
        assert (customer["name"], customer["ico"]) == (organisation.name, organisation.ico)
    other = await _organisation(sessionmaker, staying["slug"])
    await _paid_by_transfer(sessionmaker, settings, other.id, billing.today())
    async with sessionmaker() as session:
        sequences = sorted(
            await session.scalars(select(Invoice.sequence).where(Invoice.kind == "invoice"))
        )
    assert sequences == [1, 2]


# 4. No tax document with the placeholder supplier.


async def test_paid_orders_wait_for_the_suppliers_details(
    sessionmaker: Sessionmaker, settings: Settings
) -> None:
    placeholders = {
        name: Settings.model_fields[name].default
        for name in ("supplier_address", "supplier_ico", "supplier_dic", "supplier_bank_account")
    }
    unconfigured = settings.model_copy(update=placeholders)
    app = create_app(unconfigured)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            registered = await verified_organisation(http, sessionmaker)
            slug = registered["slug"]
            pricing = await http.get("/pricing?lang=en")
            assert (await login(http, registered["email"])).status_code == 200
            page = await http.get(f"/organisations/{slug}/billing?lang=en")
            czech = await http.get(f"/organisations/{slug}/billing?lang=cs")
            refused = await http.post(
                f"/organisations/{slug}/billing/order?lang=en",
                data={
                    "csrf": csrf_of(page.text),
                    "plan": "standard",
                    "term": "year",
                    "method": "transfer",
                },
            )
    finally:
        await app.state.engine.dispose()
    message = "the operator has not filled in its details for invoices"
    assert pricing.status_code == 200
    assert 'id="plan-standard"' in pricing.text
    assert 'id="supplier-not-configured"' in page.text
    assert message in page.text
    assert 'name="term"' not in page.text
    assert "provozovatel ještě nevyplnil své údaje pro faktury" in czech.text
    assert refused.status_code == 409
    assert message in refused.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0

    # An order placed before cannot get a proforma invoice while the details are missing.
    organisation = await _organisation(sessionmaker, slug)
    order = await _order_by_transfer(sessionmaker, settings, organisation.id)
    async with sessionmaker() as session, session.begin():
        with pytest.raises(Conflict) as raised:
            await billing.issue_proforma(session, unconfigured, order.id)
    assert raised.value.code == "supplier_not_configured"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Invoice)) == 0


def test_the_test_settings_configure_a_real_looking_supplier(settings: Settings) -> None:
    assert billing.supplier_configured(settings)
    assert not billing.supplier_configured(settings.model_copy(update={"supplier_ico": "00000000"}))
    assert not billing.supplier_configured(settings.model_copy(update={"supplier_dic": ""}))
    assert not billing.supplier_configured(
        settings.model_copy(update={"supplier_bank_account": ""})
    )


# 5. The invoice after a paid proforma is paid by the advance.


async def test_the_invoice_after_a_paid_proforma_says_it_was_paid_by_the_advance(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    organisation = await _organisation(sessionmaker, registered["slug"])
    await _paid_by_transfer(sessionmaker, settings, organisation.id, billing.today())
    async with sessionmaker() as session:
        proforma = await session.scalar(select(Invoice).where(Invoice.kind == "proforma"))
        invoice = await session.scalar(select(Invoice).where(Invoice.kind == "invoice"))
    assert proforma is not None
    assert invoice is not None
    text = " ".join(pdf_text(invoice.pdf).split())
    assert f"Uhrazeno zálohou {proforma.number}" in text
    assert "5 929,00 Kč" in text
    assert "Celkem k úhradě / Total to pay: 0,00 Kč" in text
    assert "Celkem k úhradě / Total to pay: 5 929,00" not in text
    assert "Celkem k úhradě / Total to pay: 5 929,00 Kč" in " ".join(pdf_text(proforma.pdf).split())


# 6. Renewals at the agreed price, dated the day of payment.


async def test_a_renewal_charges_the_agreed_price_on_the_day_it_is_paid(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, subscription = await _recurring(http, sessionmaker, fake_gopay)
    assert (subscription.agreed_price, subscription.agreed_vat_rate) == (49_000, 21)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Plan).where(Plan.code == "standard").values(price_month=79_000, vat_rate=12)
        )
    due = subscription.paid_until
    assert due > billing.today()

    assert await billing.renew_due(sessionmaker, configured, due) == 1
    [renewal] = await _renewals(sessionmaker, subscription)
    assert renewal.gateway_payment_id is not None
    assert fake_gopay.payments[renewal.gateway_payment_id].amount == 59_290
    assert (renewal.base, renewal.vat_rate, renewal.total) == (49_000, 21, 59_290)
    assert renewal.paid_on == billing.today()
    async with sessionmaker() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.order_id == renewal.id))
    assert invoice is not None
    document = json.loads(invoice.document)
    assert document["taxable_supply_on"] == billing.today().isoformat()
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == _month_after(due)


# 7. Card payments that fail, notifications that repeat or are unknown, tenancy, the mails.


@pytest.mark.parametrize("outcome", ["cancel", "timeout"])
async def test_an_initial_card_payment_that_fails_fails_the_order_and_tells_the_organisation(
    outcome: str,
    shop: tuple[str, Settings],
    fake_gopay: FakeGoPay,
    sessionmaker: Sessionmaker,
    smtp_server: SMTPServer,
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, order = await _card_order(http, sessionmaker, "year")
        payment_id = order.gateway_payment_id
        assert payment_id is not None
        await _clear_outbox(sessionmaker)
        getattr(fake_gopay, outcome)(payment_id)
        assert await fake_gopay.notify(payment_id, times=2) == [200, 200]
        page = await http.get(f"/organisations/{registered['slug']}/billing?lang=en")
    async with sessionmaker() as session:
        failed = await session.get(Order, order.id)
        subscriptions = await session.scalar(select(func.count()).select_from(Subscription))
    assert failed is not None
    assert failed.status == "failed"
    assert subscriptions == 0
    assert "Current plan: Free" in page.text
    assert await _mail_kinds(sessionmaker) == ["billing_card_failed"]
    body = _one(await _delivered(sessionmaker, configured, smtp_server), "Card payment failed")
    assert "Platba kartou 5 929,00 Kč za tarif" in body
    assert "The card payment of 5 929,00 Kč for the plan of" in body


async def test_a_notification_for_an_unknown_payment_is_refused_and_logged(
    shop: tuple[str, Settings],
    fake_gopay: FakeGoPay,
    sessionmaker: Sessionmaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, order = await _card_order(http, sessionmaker, "year")
        with caplog.at_level(logging.WARNING, logger="pistalka.billing"):
            unknown = await http.get("/api/v1/payments/gopay", params={"id": 3_999_999_999})
            unknown_child = await http.get(
                "/api/v1/payments/gopay",
                params={"id": 3_999_999_998, "parent_id": order.gateway_payment_id},
            )
    assert unknown.status_code == 404
    assert unknown_child.status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "pistalka.billing"]
    assert any("unknown payment 3999999999 refused" in line for line in lines), lines
    assert any("unknown payment 3999999998 refused" in line for line in lines), lines
    organisation = await _organisation(sessionmaker, registered["slug"])
    for line in lines:
        for personal in (registered["email"], organisation.name, organisation.ico, "127.0.0.1"):
            assert personal not in line
    assert await _order_status(sessionmaker, order.id) == "pending"


async def test_two_identical_notifications_at_once_record_one_payment(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, _ = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, order = await _card_order(http, sessionmaker, "year")
    payment_id = order.gateway_payment_id
    assert payment_id is not None
    await _clear_outbox(sessionmaker)
    fake_gopay.pay(payment_id)

    results = await asyncio.gather(*(fake_gopay.notify(payment_id) for _ in range(2)))

    assert results == [[200], [200]]
    async with sessionmaker() as session:
        invoices = await session.scalar(select(func.count()).select_from(Invoice))
        subscriptions = await session.scalar(select(func.count()).select_from(Subscription))
    assert (invoices, subscriptions) == (1, 1)
    kinds = await _mail_kinds(sessionmaker)
    assert (kinds.count("billing_paid"), kinds.count("billing_invoice")) == (1, 1)


async def test_another_organisations_invoice_and_order_are_not_found(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    owner = await verified_organisation(client, sessionmaker)
    other = await verified_organisation(client, sessionmaker)
    organisation = await _organisation(sessionmaker, owner["slug"])
    order = await _paid_by_transfer(sessionmaker, settings, organisation.id, billing.today())
    async with sessionmaker() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.kind == "invoice"))
    assert invoice is not None

    assert (await login(client, owner["email"])).status_code == 200
    own_invoice = await client.get(f"/organisations/{owner['slug']}/billing/invoices/{invoice.id}")
    own_order = await client.get(f"/organisations/{owner['slug']}/billing?order={order.id}")
    client.cookies.clear()
    assert (await login(client, other["email"])).status_code == 200
    their_invoice = await client.get(
        f"/organisations/{other['slug']}/billing/invoices/{invoice.id}"
    )
    their_order = await client.get(f"/organisations/{other['slug']}/billing?order={order.id}")
    unknown_order = await client.get(f"/organisations/{other['slug']}/billing?order=x")

    assert (own_invoice.status_code, own_order.status_code) == (200, 200)
    assert their_invoice.status_code == 404
    assert their_order.status_code == 404
    assert unknown_order.status_code == 404
    assert invoice.number not in their_invoice.text


async def test_billing_mails_are_written_in_czech_and_english(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    organisation = await _organisation(sessionmaker, registered["slug"])
    await _clear_outbox(sessionmaker)
    paid_on = billing.today() - timedelta(days=360)
    order = await _paid_by_transfer(sessionmaker, settings, organisation.id, paid_on)
    async with sessionmaker() as session:
        subscription = await session.scalar(select(Subscription))
        numbers = {i.kind: i.number for i in await session.scalars(select(Invoice))}
    assert subscription is not None
    assert await billing.ending_notices(sessionmaker, settings) == 1
    bodies = await _delivered(sessionmaker, settings, smtp_server)
    until = subscription.paid_until.strftime("%d. %m. %Y")
    expected = {
        "Proforma invoice": (
            f"Vystavili jsme zálohovou fakturu {numbers['proforma']} "
            f"pro organizaci {organisation.name}",
            f"We issued proforma invoice {numbers['proforma']} to {organisation.name}",
        ),
        "Payment received": (
            f"Od organizace {organisation.name} jsme přijali platbu 5 929,00 Kč. "
            f"Tarif je zaplacen do {until} včetně.",
            f"We received the payment of 5 929,00 Kč from {organisation.name}; "
            f"the plan is paid until {until} inclusive.",
        ),
        f"Invoice {numbers['invoice']} is ready": (
            f"Faktura {numbers['invoice']} za platbu organizace {organisation.name} je připravena",
            f"Invoice {numbers['invoice']} for the payment of {organisation.name} is ready",
        ),
        "Your plan ends on": (
            f"Placený tarif organizace {organisation.name} končí {until} a sám se neprodlouží.",
            f"The paid plan of {organisation.name} ends on {until} and does not renew",
        ),
    }
    for subject, (czech, english) in expected.items():
        body = " ".join(_one(bodies, subject).split())
        assert czech in body, subject
        assert english in body, subject
        assert f"/organisations/{registered['slug']}/billing" in body
    assert order.variable_symbol in _one(bodies, "Proforma invoice")


# 8. A cancelled organisation is never charged; one recurrence per organisation; the grace days.


async def test_an_organisation_cancelled_with_its_recurrence_running_is_not_charged(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, subscription = await _recurring(http, sessionmaker, fake_gopay)
    # Cancelled before cancelling stopped the recurrences: the recurrence is not stopped.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.id == subscription.organisation_id)
            .values(cancelled_at=utcnow())
        )
    assert (await _subscription(sessionmaker, subscription.id)).recurrence_stopped_at is None

    assert await billing.renew_due(sessionmaker, configured, subscription.paid_until) == 0
    # Nor when the cancellation comes after renew_due listed the subscription.
    async with sessionmaker() as session, session.begin():
        assert await renewals._begin_renewal(session, subscription.id) is None
    assert fake_gopay.recurrence_charges == 0
    assert await _renewals(sessionmaker, subscription) == []
    assert (await _subscription(sessionmaker, subscription.id)).paid_until == (
        subscription.paid_until
    )


async def test_a_second_recurring_order_is_refused_while_the_first_waits_for_payment(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, _ = shop
    async with httpx.AsyncClient(base_url=url) as http:
        registered, first = await _card_order(http, sessionmaker, "recurring")
        slug = registered["slug"]
        page = await http.get(f"/organisations/{slug}/billing?lang=en")
        form = {"csrf": csrf_of(page.text), "plan": "standard", "term": "recurring"}
        form["method"] = "card"
        english = await http.post(f"/organisations/{slug}/billing/order?lang=en", data=form)
        czech = await http.post(f"/organisations/{slug}/billing/order?lang=cs", data=form)
        year = await http.post(
            f"/organisations/{slug}/billing/order", data={**form, "term": "year"}
        )
        # Abandoned at the gateway, its notification not (yet) come: asked about, it is over.
        assert first.gateway_payment_id is not None
        fake_gopay.cancel(first.gateway_payment_id)
        after_cancel = await http.post(f"/organisations/{slug}/billing/order", data=form)
    assert english.status_code == 409
    assert "A recurring card payment ordered earlier is waiting for payment" in english.text
    assert czech.status_code == 409
    assert "Opakovaná platba kartou objednaná dříve čeká na zaplacení" in czech.text
    assert year.status_code == 303
    assert after_cancel.status_code == 303
    async with sessionmaker() as session:
        statuses = list(
            await session.scalars(
                select(Order.status).where(Order.term == "recurring").order_by(Order.created_at)
            )
        )
    assert statuses == ["failed", "pending"]


async def test_a_second_recurring_order_paid_adds_a_month_to_the_running_recurrence(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    async with httpx.AsyncClient(base_url=url) as http:
        _, first = await _card_order(http, sessionmaker, "recurring")
    # The second tab's order, placed before the refusal existed (or at the very same moment).
    client = billing.gateway(configured)
    assert client is not None
    try:
        payment = await client.create_payment(
            amount=first.total,
            currency="CZK",
            order_number="1999999999",
            description="second tab",
            payer_email="payer@example.cz",
            return_url=f"{url}/",
            notification_url=f"{url}/api/v1/payments/gopay",
            recurring_until=billing.add_months(billing.today(), billing.RECURRING_MONTHS),
        )
    finally:
        await client.aclose()
    async with sessionmaker() as session, session.begin():
        second = Order(
            organisation_id=first.organisation_id,
            plan_id=first.plan_id,
            term="recurring",
            method="card",
            base=first.base,
            vat=first.vat,
            total=first.total,
            vat_rate=first.vat_rate,
            variable_symbol="1999999999",
            status="pending",
            gateway_payment_id=payment.id,
        )
        session.add(second)
    assert first.gateway_payment_id is not None
    for payment_id in (first.gateway_payment_id, payment.id):
        fake_gopay.pay(payment_id)
        assert await fake_gopay.notify(payment_id) == [200]

    async with sessionmaker() as session:
        [subscription] = list(await session.scalars(select(Subscription)))
        paid = list(await session.scalars(select(Order).where(Order.status == "paid")))
    first_end = billing.add_months(billing.today(), 1) - timedelta(days=1)
    assert subscription.gateway_parent_id == first.gateway_payment_id
    assert subscription.paid_until == _month_after(first_end)
    assert {order.subscription_id for order in paid} == {subscription.id}
    assert len(paid) == 2
    assert fake_gopay.payments[payment.id].recurrence["recurrence_state"] == "STOPPED"  # type: ignore[index]
    # One recurrence charges the card, once per period, from the end of both paid months.
    assert await billing.renew_due(sessionmaker, configured, first_end) == 0
    assert await billing.renew_due(sessionmaker, configured, subscription.paid_until) == 1
    [charged] = [p for p in fake_gopay.payments.values() if p.parent_id is not None]
    assert charged.parent_id == first.gateway_payment_id


async def test_the_day_after_the_last_paid_day_the_recurrence_can_still_be_stopped(
    shop: tuple[str, Settings], fake_gopay: FakeGoPay, sessionmaker: Sessionmaker
) -> None:
    url, configured = shop
    yesterday = billing.today() - timedelta(days=1)
    async with httpx.AsyncClient(base_url=url) as http:
        registered, subscription = await _recurring(http, sessionmaker, fake_gopay)
        # The renewal due yesterday has not run yet: renew_due would still charge today.
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Subscription)
                .where(Subscription.id == subscription.id)
                .values(starts_on=billing.add_months(yesterday, -1), paid_until=yesterday)
            )
        slug = registered["slug"]
        page = await http.get(f"/organisations/{slug}/billing?lang=en")
        form = {"csrf": csrf_of(page.text), "plan": "premium", "term": "year", "method": "card"}
        refused = await http.post(f"/organisations/{slug}/billing/order?lang=en", data=form)
        stopped = await http.post(
            f"/organisations/{slug}/billing/stop", data={"csrf": form["csrf"]}
        )
    assert "Stop the recurring payment</button>" in page.text
    assert 'id="recurrence-active"' in page.text
    assert refused.status_code == 409
    assert stopped.status_code == 303
    assert "done=stopped" in stopped.headers["location"]
    parent = subscription.gateway_parent_id
    assert parent is not None
    assert fake_gopay.payments[parent].recurrence["recurrence_state"] == "STOPPED"  # type: ignore[index]
    assert (await _subscription(sessionmaker, subscription.id)).recurrence_stopped_at is not None
    assert await billing.renew_due(sessionmaker, configured, billing.today()) == 0
    assert fake_gopay.recurrence_charges == 0


async def test_the_plan_starts_on_the_day_of_payment_only_when_no_paid_period_runs(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    assert (await login(client, registered["email"])).status_code == 200
    free = await client.get(f"/organisations/{slug}/billing?lang=en")
    organisation = await _organisation(sessionmaker, slug)
    await _paid_by_transfer(sessionmaker, settings, organisation.id, billing.today())
    paid = await client.get(f"/organisations/{slug}/billing?lang=en")
    starts = "The plan starts on the day of payment, inclusive."
    refunds = "Nothing is refunded when a plan is stopped or the registration cancelled."
    assert starts in free.text
    assert 'id="next-start"' not in free.text
    assert 'id="next-start"' in paid.text
    assert starts not in paid.text
    assert refunds in paid.text
    czech = await client.get(f"/organisations/{slug}/billing?lang=cs")
    assert "Při zastavení tarifu nebo zrušení registrace se nic nevrací." in czech.text
    assert "Tarif začíná dnem platby včetně." not in czech.text
