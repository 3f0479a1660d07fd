"""The GoPay client against the fake gateway of tests/fake_gopay.py, over real sockets."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.payments.gopay import RECURRENCE_FAILED, RECURRENCE_STOPPED, GatewayError, GoPay
from tests.browser import ServerThread
from tests.browser import free_port as find_free_port
from tests.fake_gopay import FakeGoPay

PAYER = "oznamovatel@example.cz"


@pytest.fixture
async def gopay(fake_gopay: FakeGoPay) -> AsyncIterator[GoPay]:
    client = GoPay(
        base_url=fake_gopay.base_url,
        goid=fake_gopay.goid,
        client_id=fake_gopay.client_id,
        client_secret=fake_gopay.client_secret,
        timeout=5,
    )
    yield client
    await client.aclose()


@dataclass
class Receiver:
    url: str
    received: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A tiny shop on loopback whose /notify records the query of each call."""
    port = find_free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}/notify")

    async def notify(request: Request) -> PlainTextResponse:
        receiver.received.append(dict(request.query_params))
        return PlainTextResponse("OK")

    with ServerThread(Starlette(routes=[Route("/notify", notify)]), port):
        yield receiver


async def create(gopay: GoPay, **overrides: object) -> int:
    values: dict[str, object] = {
        "amount": 99000,
        "currency": "CZK",
        "order_number": "INV-2026-0001",
        "description": "Píšťalka, roční předplatné",
        "payer_email": PAYER,
        "return_url": "https://pistalka.example/billing/return",
        "notification_url": "https://pistalka.example/billing/notify",
        **overrides,
    }
    payment = await gopay.create_payment(**values)  # type: ignore[arg-type]
    return payment.id


async def started_recurrence(gopay: GoPay, fake_gopay: FakeGoPay) -> int:
    parent_id = await create(gopay, recurring_until=date(2030, 12, 31))
    fake_gopay.pay(parent_id)
    return parent_id


def token_requests(fake_gopay: FakeGoPay) -> int:
    return fake_gopay.requests.count(("POST", "/api/oauth2/token"))


async def test_create_payment_sends_a_card_payment_with_its_callbacks(
    gopay: GoPay, fake_gopay: FakeGoPay
) -> None:
    payment = await gopay.create_payment(
        amount=99000,
        currency="CZK",
        order_number="INV-2026-0001",
        description="Píšťalka, roční předplatné",
        payer_email=PAYER,
        return_url="https://pistalka.example/billing/return",
        notification_url="https://pistalka.example/billing/notify",
    )

    assert (payment.state, payment.amount, payment.currency) == ("CREATED", 99000, "CZK")
    assert payment.order_number == "INV-2026-0001"
    assert payment.gw_url is not None
    assert payment.gw_url.startswith(fake_gopay.base_url)
    assert payment.parent_id is None
    assert payment.recurrence_state is None
    stored = fake_gopay.payments[payment.id]
    assert stored.amount == 99000
    assert stored.currency == "CZK"
    assert stored.order_number == "INV-2026-0001"
    assert stored.payer_email == PAYER
    assert stored.allowed_payment_instruments == ["PAYMENT_CARD"]
    assert stored.request["payer"]["default_payment_instrument"] == "PAYMENT_CARD"
    assert stored.return_url == "https://pistalka.example/billing/return"
    assert stored.notification_url == "https://pistalka.example/billing/notify"
    assert stored.lang == "CS"
    assert stored.recurrence is None


async def test_create_payment_with_recurring_until_requests_an_on_demand_recurrence(
    gopay: GoPay, fake_gopay: FakeGoPay
) -> None:
    payment = await gopay.create_payment(
        amount=99000,
        currency="CZK",
        order_number="INV-2026-0002",
        description="Píšťalka",
        payer_email=PAYER,
        return_url="https://pistalka.example/billing/return",
        notification_url="https://pistalka.example/billing/notify",
        recurring_until=date(2030, 12, 31),
    )

    assert payment.recurrence_state == "REQUESTED"
    assert fake_gopay.payments[payment.id].recurrence == {
        "recurrence_cycle": "ON_DEMAND",
        "recurrence_date_to": "2030-12-31",
        "recurrence_state": "REQUESTED",
    }


async def test_status_of_a_paid_payment_is_paid(gopay: GoPay, fake_gopay: FakeGoPay) -> None:
    payment_id = await create(gopay)
    fake_gopay.pay(payment_id)

    payment = await gopay.status(payment_id)

    assert (payment.id, payment.state, payment.amount) == (payment_id, "PAID", 99000)


async def test_payment_that_never_completes_stays_created(
    gopay: GoPay, fake_gopay: FakeGoPay
) -> None:
    payment_id = await create(gopay)

    assert (await gopay.status(payment_id)).state == "CREATED"
    assert (await gopay.status(payment_id)).state == "CREATED"


@pytest.mark.parametrize(("action", "state"), [("cancel", "CANCELED"), ("timeout", "TIMEOUTED")])
async def test_status_of_an_unpaid_payment(
    gopay: GoPay, fake_gopay: FakeGoPay, action: str, state: str
) -> None:
    payment_id = await create(gopay)
    getattr(fake_gopay, action)(payment_id)

    assert (await gopay.status(payment_id)).state == state


async def test_paid_initial_payment_starts_the_recurrence(
    gopay: GoPay, fake_gopay: FakeGoPay
) -> None:
    parent_id = await started_recurrence(gopay, fake_gopay)

    assert (await gopay.status(parent_id)).recurrence_state == "STARTED"


async def test_recurrence_charges_the_card_again(gopay: GoPay, fake_gopay: FakeGoPay) -> None:
    parent_id = await started_recurrence(gopay, fake_gopay)

    payment = await gopay.create_recurrence(
        parent_id, amount=99000, currency="CZK", order_number="INV-2027-0001", description="2027"
    )

    assert (payment.state, payment.parent_id, payment.amount) == ("PAID", parent_id, 99000)
    assert payment.order_number == "INV-2027-0001"
    assert (await gopay.status(payment.id)).parent_id == parent_id


async def test_declined_recurrence_raises_recurrence_failed(
    gopay: GoPay, fake_gopay: FakeGoPay
) -> None:
    parent_id = await started_recurrence(gopay, fake_gopay)
    fake_gopay.fail_next_recurrence()

    with pytest.raises(GatewayError) as raised:
        await gopay.create_recurrence(
            parent_id, amount=99000, currency="CZK", order_number="INV-2027-1", description="x"
        )

    assert (raised.value.status_code, raised.value.error_code) == (409, RECURRENCE_FAILED)
    assert "340" in str(raised.value)


async def test_declined_recurrence_may_come_as_a_canceled_payment(
    gopay: GoPay, fake_gopay: FakeGoPay
) -> None:
    parent_id = await started_recurrence(gopay, fake_gopay)
    fake_gopay.fail_next_recurrence(as_canceled_payment=True)

    payment = await gopay.create_recurrence(
        parent_id, amount=99000, currency="CZK", order_number="INV-2027-1", description="x"
    )

    assert (payment.state, payment.parent_id) == ("CANCELED", parent_id)


async def test_void_recurrence_stops_it(gopay: GoPay, fake_gopay: FakeGoPay) -> None:
    parent_id = await started_recurrence(gopay, fake_gopay)

    await gopay.void_recurrence(parent_id)

    assert (await gopay.status(parent_id)).recurrence_state == "STOPPED"
    with pytest.raises(GatewayError) as raised:
        await gopay.create_recurrence(
            parent_id, amount=99000, currency="CZK", order_number="INV-2027-1", description="x"
        )
    assert raised.value.error_code == RECURRENCE_STOPPED


async def test_token_is_fetched_once_for_many_calls(gopay: GoPay, fake_gopay: FakeGoPay) -> None:
    payment_id = await create(gopay)
    await gopay.status(payment_id)
    await gopay.status(payment_id)

    assert token_requests(fake_gopay) == 1


async def test_refused_token_is_fetched_again(gopay: GoPay, fake_gopay: FakeGoPay) -> None:
    payment_id = await create(gopay)
    fake_gopay.expire_tokens()

    assert (await gopay.status(payment_id)).state == "CREATED"
    assert token_requests(fake_gopay) == 2


async def test_token_is_not_used_shortly_before_it_expires(
    gopay: GoPay, fake_gopay: FakeGoPay
) -> None:
    fake_gopay.token_lifetime = 60
    payment_id = await create(gopay)
    await gopay.status(payment_id)

    assert token_requests(fake_gopay) == 2


async def test_wrong_credentials_raise_without_the_secret(fake_gopay: FakeGoPay) -> None:
    secret = "not-the-secret-" + fake_gopay.client_secret
    gopay = GoPay(
        base_url=fake_gopay.base_url,
        goid=fake_gopay.goid,
        client_id=fake_gopay.client_id,
        client_secret=secret,
    )
    try:
        with pytest.raises(GatewayError) as raised:
            await gopay.status(3000000001)
    finally:
        await gopay.aclose()

    assert raised.value.status_code == 403
    assert secret not in str(raised.value)


async def test_server_error_raises_gateway_error(gopay: GoPay, fake_gopay: FakeGoPay) -> None:
    payment_id = await create(gopay)
    fake_gopay.fail_next(500)

    with pytest.raises(GatewayError) as raised:
        await gopay.status(payment_id)

    assert raised.value.status_code == 500
    assert "HTTP 500" in str(raised.value)


async def test_unknown_payment_raises_gateway_error(gopay: GoPay) -> None:
    with pytest.raises(GatewayError) as raised:
        await gopay.status(3999999999)

    assert raised.value.status_code == 404


async def test_connection_refused_raises_gateway_error() -> None:
    gopay = GoPay(
        base_url=f"http://127.0.0.1:{find_free_port()}", goid=1, client_id="1", client_secret="s"
    )
    try:
        with pytest.raises(GatewayError, match="ConnectError"):
            await gopay.status(3000000001)
    finally:
        await gopay.aclose()


def scripted(answers: list[httpx.Response | Exception]) -> httpx.MockTransport:
    """A transport that answers the token request, then the given answers in order."""
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 1800})
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle)


async def scripted_status(answer: httpx.Response | Exception) -> None:
    gopay = GoPay(
        base_url="https://gw.sandbox.example",
        goid=1,
        client_id="1",
        client_secret="s",
        transport=scripted([answer]),
    )
    try:
        await gopay.status(3000000001)
    finally:
        await gopay.aclose()


async def test_timeout_raises_gateway_error() -> None:
    with pytest.raises(GatewayError, match="ReadTimeout"):
        await scripted_status(httpx.ReadTimeout("slow"))


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, json={"id": 3000000001, "state": "PAID"}),
        httpx.Response(200, json={"id": "3000000001", "state": "PAID", "amount": 1,
                                  "currency": "CZK", "order_number": "1"}),
    ],
)  # fmt: skip
async def test_malformed_answer_raises_gateway_error(answer: httpx.Response) -> None:
    with pytest.raises(GatewayError, match="malformed"):
        await scripted_status(answer)


async def test_error_message_leaves_out_what_gopay_quotes_back() -> None:
    answer = httpx.Response(
        409,
        json={"errors": [{"scope": "F", "field": "payer.contact.email", "error_code": 111,
                          "error_name": "WRONG_FORMAT", "message": f"Bad e-mail {PAYER}"}]},
    )  # fmt: skip
    with pytest.raises(GatewayError) as raised:
        await scripted_status(answer)

    assert "111 WRONG_FORMAT field payer.contact.email" in str(raised.value)
    assert PAYER not in str(raised.value)


async def test_notify_calls_the_notification_url_each_time(
    gopay: GoPay, fake_gopay: FakeGoPay, receiver: Receiver
) -> None:
    payment_id = await create(gopay, notification_url=receiver.url)
    fake_gopay.pay(payment_id)

    statuses = await fake_gopay.notify(payment_id, times=2)

    assert statuses == [200, 200]
    assert receiver.received == [{"id": str(payment_id)}, {"id": str(payment_id)}]


async def test_notify_of_a_recurrence_payment_names_its_parent(
    gopay: GoPay, fake_gopay: FakeGoPay, receiver: Receiver
) -> None:
    parent_id = await create(gopay, notification_url=receiver.url, recurring_until=date(2030, 1, 1))
    fake_gopay.pay(parent_id)
    payment = await gopay.create_recurrence(
        parent_id, amount=99000, currency="CZK", order_number="INV-2027-1", description="x"
    )

    await fake_gopay.notify(payment.id)

    assert receiver.received == [{"id": str(payment.id), "parent_id": str(parent_id)}]
