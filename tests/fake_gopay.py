"""A FAKE GoPay gateway for tests: a test double of the external payment service, not GoPay.

The real gateway cannot be reached from tests, so this Starlette app answers the few endpoints of
GoPay's REST API (https://doc.gopay.com) that app/payments/gopay.py uses, the way the
documentation describes them: the OAuth2 token, create payment, payment status, create-recurrence
and void-recurrence. It checks the Basic credentials, the Bearer token and the goid, keeps payments
in memory and lets a test decide what the payer and the card do (`pay`, `cancel`, `timeout`, a
declined recurrence) and when GoPay calls the shop back (`notify`).

Served by uvicorn on 127.0.0.1 in a thread; loaded from tests/conftest.py with `pytest_plugins`.
The `fake_gopay` fixture yields a running FakeGoPay.
"""

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.browser import ServerThread
from tests.browser import free_port as find_free_port

FINAL_STATES = {"PAID", "CANCELED", "TIMEOUTED", "REFUNDED", "PARTIALLY_REFUNDED"}
CURRENCIES = {"CZK", "EUR", "PLN", "USD", "GBP", "HUF", "RON", "BGN", "HRK"}
RECURRENCE_CYCLES = {"DAY", "WEEK", "MONTH", "ON_DEMAND"}

Handler = Callable[[Request], Awaitable[JSONResponse]]


@dataclass
class FakePayment:
    """A payment as the fake gateway keeps it; `request` is the JSON body it was created from."""

    id: int
    amount: int
    currency: str
    order_number: str
    description: str
    payer_email: str | None
    return_url: str
    notification_url: str
    lang: str | None
    allowed_payment_instruments: list[str]
    state: str = "CREATED"
    parent_id: int | None = None
    # recurrence_cycle, recurrence_date_to and recurrence_state, as GoPay shows them
    recurrence: dict[str, Any] | None = None
    request: dict[str, Any] = field(default_factory=dict)


def _error(
    status: int, code: int, name: str | None = None, field_name: str | None = None
) -> JSONResponse:
    # GoPay's error shape (doc.gopay.com, "Errors"); the messages here are placeholders.
    error = {
        "scope": "F" if field_name else "G",
        "field": field_name,
        "error_code": code,
        "error_name": name,
        "message": None,
    }
    return JSONResponse({"date_issued": int(time.time() * 1000), "errors": [error]}, status)


class FakeGoPay:
    """The fake gateway's state and the test controls; `app` is what uvicorn serves."""

    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.goid = 8123456789
        self.client_id = "1234567890"
        self.client_secret = secrets.token_urlsafe(12)
        self.payments: dict[int, FakePayment] = {}
        # (method, path) of every request received, the token requests included
        self.requests: list[tuple[str, str]] = []
        self.token_lifetime = 1800  # seconds, as GoPay's tokens
        self._tokens: dict[str, float] = {}
        self._next_id = 3000000001
        self._fail_next: int | None = None
        self._decline_next: str | None = None
        self._recurrences_complete_later = False
        self._late_answer_seconds: float | None = None
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/api/oauth2/token", self._guard(self._token, auth=False), methods=["POST"]),
                Route("/api/payments/payment", self._guard(self._create), methods=["POST"]),
                Route("/api/payments/payment/{id:int}", self._guard(self._status)),
                Route(
                    "/api/payments/payment/{id:int}/create-recurrence",
                    self._guard(self._create_recurrence),
                    methods=["POST"],
                ),
                Route(
                    "/api/payments/payment/{id:int}/void-recurrence",
                    self._guard(self._void_recurrence),
                    methods=["POST"],
                ),
            ]
        )

    # Test controls: what the payer, the card and GoPay do.

    def pay(self, payment_id: int) -> None:
        """The payer pays by card; an initial recurrence payment starts its recurrence."""
        with self._lock:
            payment = self._open_payment(payment_id)
            payment.state = "PAID"
            if payment.recurrence is not None:
                payment.recurrence["recurrence_state"] = "STARTED"

    def cancel(self, payment_id: int) -> None:
        """The payer cancels at the gateway, or the card is refused there."""
        with self._lock:
            self._open_payment(payment_id).state = "CANCELED"

    def timeout(self, payment_id: int) -> None:
        """The payer never finished and GoPay gave up on the payment."""
        with self._lock:
            self._open_payment(payment_id).state = "TIMEOUTED"

    def fail_next_recurrence(self, *, as_canceled_payment: bool = False) -> None:
        """Decline the card on the next create-recurrence.

        GoPay answers HTTP 409 with error 340 PAYMENT_RECURRENCE_FAILED (as seen from the real
        gateway); with `as_canceled_payment` it instead creates the payment in state CANCELED,
        which the documentation's state list also allows. The app must handle both.
        """
        with self._lock:
            self._decline_next = "canceled" if as_canceled_payment else "error"

    def complete_recurrences_later(self) -> None:
        """Answer create-recurrence with the payment CREATED, as GoPay's documentation describes
        the ON_DEMAND recurrence: the card is charged afterwards and the result comes by a
        notification (with `parent_id`). The test then calls `pay` or `cancel`, and `notify`."""
        with self._lock:
            self._recurrences_complete_later = True

    def answer_next_recurrence_late(self, seconds: float) -> None:
        """Charge the card on the next create-recurrence but answer only after `seconds`, so a
        client with a shorter timeout never learns the outcome."""
        with self._lock:
            self._late_answer_seconds = seconds

    @property
    def recurrence_charges(self) -> int:
        """How many recurrence payments were created (charged or attempted) so far."""
        with self._lock:
            return sum(1 for payment in self.payments.values() if payment.parent_id is not None)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused with 401 from now on."""
        with self._lock:
            self._tokens.clear()

    def fail_next(self, status: int = 500) -> None:
        """The next request of any kind (token included) answers `status` with a system error."""
        with self._lock:
            self._fail_next = status

    async def notify(self, payment_id: int, times: int = 1) -> list[int]:
        """Call the payment's notification_url as GoPay does, `times` times; the HTTP statuses."""
        with self._lock:
            payment = self.payments[payment_id]
            params = {"id": str(payment.id)}
            if payment.parent_id is not None:
                params["parent_id"] = str(payment.parent_id)
            url = payment.notification_url
        statuses = []
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(times):
                response = await client.get(url, params=params)
                statuses.append(response.status_code)
        return statuses

    def _open_payment(self, payment_id: int) -> FakePayment:
        payment = self.payments[payment_id]
        assert payment.state not in FINAL_STATES, f"payment {payment_id} is {payment.state}"
        return payment

    # The HTTP side.

    def _guard(self, handler: Handler, *, auth: bool = True) -> Handler:
        """Log the request, answer a failure the test asked for, check the Bearer token."""

        async def guarded(request: Request) -> JSONResponse:
            with self._lock:
                self.requests.append((request.method, request.url.path))
                status, self._fail_next = self._fail_next, None
                if status is None and auth and not self._token_valid(request):
                    return _error(401, 200)
            if status is not None:
                return _error(status, 100)
            if request.headers.get("accept") != "application/json":
                return _error(406, 116)
            return await handler(request)

        return guarded

    def _token_valid(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires_at = self._tokens.get(token)
        return scheme == "Bearer" and expires_at is not None and time.monotonic() < expires_at

    async def _token(self, request: Request) -> JSONResponse:
        credentials = f"{self.client_id}:{self.client_secret}".encode()
        expected = "Basic " + base64.b64encode(credentials).decode()
        if not secrets.compare_digest(request.headers.get("authorization", ""), expected):
            return _error(403, 202)
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return _error(409, 111, field_name="grant_type")
        if form.get("scope") not in ("payment-all", "payment-create"):
            return _error(409, 111, field_name="scope")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return JSONResponse(
            {"token_type": "bearer", "access_token": token, "expires_in": self.token_lifetime}
        )

    async def _create(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        if body is None:
            return _error(409, 116)
        target = body.get("target")
        if not isinstance(target, dict) or target.get("type") != "ACCOUNT":
            return _error(409, 110, field_name="target")
        if str(target.get("goid")) != str(self.goid):
            return _error(403, 200, field_name="target.goid")
        invalid = _invalid_order(body)
        if invalid:
            return _error(409, 111, field_name=invalid)
        callback = body.get("callback")
        if not isinstance(callback, dict) or not all(
            isinstance(callback.get(key), str) for key in ("return_url", "notification_url")
        ):
            return _error(409, 110, field_name="callback")
        payer = body.get("payer")
        payer = payer if isinstance(payer, dict) else {}
        instruments = payer.get("allowed_payment_instruments", [])
        contact = payer.get("contact")
        contact = contact if isinstance(contact, dict) else {}
        recurrence = body.get("recurrence")
        if recurrence is not None:
            invalid = _invalid_recurrence(recurrence)
            if invalid:
                return _error(409, 111, field_name=invalid)
            recurrence = {**recurrence, "recurrence_state": "REQUESTED"}
        with self._lock:
            payment = FakePayment(
                id=self._new_id(),
                amount=body["amount"],
                currency=body["currency"],
                order_number=body["order_number"],
                description=str(body.get("order_description", "")),
                payer_email=contact.get("email"),
                return_url=callback["return_url"],
                notification_url=callback["notification_url"],
                lang=body.get("lang"),
                allowed_payment_instruments=list(instruments),
                recurrence=recurrence,
                request=body,
            )
            self.payments[payment.id] = payment
            return JSONResponse(self._view(payment))

    async def _status(self, request: Request) -> JSONResponse:
        with self._lock:
            payment = self.payments.get(request.path_params["id"])
            if payment is None:
                return _error(404, 304)
            return JSONResponse(self._view(payment))

    async def _create_recurrence(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        if body is None:
            return _error(409, 116)
        invalid = _invalid_order(body)
        if invalid:
            return _error(409, 111, field_name=invalid)
        with self._lock:
            parent = self.payments.get(request.path_params["id"])
            if parent is None:
                return _error(404, 304)
            recurrence = parent.recurrence
            if recurrence is None or recurrence["recurrence_cycle"] != "ON_DEMAND":
                return _error(409, 341, "PAYMENT_RECURRENCE_NOT_SUPPORTED")
            if recurrence["recurrence_state"] == "STOPPED":
                return _error(409, 342, "PAYMENT_RECURRENCE_STOPPED")
            if parent.state != "PAID" or recurrence["recurrence_state"] != "STARTED":
                return _error(409, 303, "PAYMENT_WRONG_STATE")
            if body["currency"] != parent.currency:
                return _error(409, 111, field_name="currency")
            declined, self._decline_next = self._decline_next, None
            if declined == "error":
                return _error(409, 340, "PAYMENT_RECURRENCE_FAILED")
            late, self._late_answer_seconds = self._late_answer_seconds, None
            if declined == "canceled":
                state = "CANCELED"
            elif self._recurrences_complete_later:
                state = "CREATED"
            else:
                state = "PAID"  # the stored card is charged at once, without the payer
            payment = FakePayment(
                id=self._new_id(),
                amount=body["amount"],
                currency=body["currency"],
                order_number=body["order_number"],
                description=str(body.get("order_description", "")),
                payer_email=parent.payer_email,
                return_url=parent.return_url,
                notification_url=parent.notification_url,
                lang=parent.lang,
                allowed_payment_instruments=["PAYMENT_CARD"],
                state=state,
                parent_id=parent.id,
                request=body,
            )
            self.payments[payment.id] = payment
            view = self._view(payment)
        if late is not None:
            await asyncio.sleep(late)
        return JSONResponse(view)

    async def _void_recurrence(self, request: Request) -> JSONResponse:
        with self._lock:
            payment = self.payments.get(request.path_params["id"])
            if payment is None:
                return _error(404, 304)
            if payment.recurrence is None:
                return _error(409, 341, "PAYMENT_RECURRENCE_NOT_SUPPORTED")
            if payment.recurrence["recurrence_state"] == "STOPPED":
                return _error(409, 342, "PAYMENT_RECURRENCE_STOPPED")
            payment.recurrence["recurrence_state"] = "STOPPED"
            return JSONResponse({"id": payment.id, "result": "FINISHED"})

    def _new_id(self) -> int:
        payment_id = self._next_id
        self._next_id += 1
        return payment_id

    def _view(self, payment: FakePayment) -> dict[str, Any]:
        """The payment as GoPay's status answer shows it."""
        view: dict[str, Any] = {
            "id": payment.id,
            "order_number": payment.order_number,
            "state": payment.state,
            "amount": payment.amount,
            "currency": payment.currency,
            "payer": {
                "allowed_payment_instruments": payment.allowed_payment_instruments,
                "contact": {"email": payment.payer_email},
            },
            "target": {"type": "ACCOUNT", "goid": self.goid},
            "lang": payment.lang,
            "gw_url": f"{self.base_url}/gw/v3/{payment.id}",
        }
        if payment.state != "CREATED":
            view["payment_instrument"] = "PAYMENT_CARD"
        if payment.parent_id is not None:
            view["parent_id"] = payment.parent_id
        if payment.recurrence is not None:
            view["recurrence"] = dict(payment.recurrence)
        return view


async def _json_body(request: Request) -> dict[str, Any] | None:
    if request.headers.get("content-type", "").split(";")[0] != "application/json":
        return None
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _invalid_order(body: dict[str, Any]) -> str | None:
    """The first invalid field of an order's amount, currency and number, if any."""
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return "amount"
    if body.get("currency") not in CURRENCIES:
        return "currency"
    order_number = body.get("order_number")
    if not isinstance(order_number, str) or not 0 < len(order_number) <= 128:
        return "order_number"
    return None


def _invalid_recurrence(recurrence: object) -> str | None:
    if not isinstance(recurrence, dict):
        return "recurrence"
    if recurrence.get("recurrence_cycle") not in RECURRENCE_CYCLES:
        return "recurrence.recurrence_cycle"
    try:
        date.fromisoformat(str(recurrence.get("recurrence_date_to")))
    except ValueError:
        return "recurrence.recurrence_date_to"
    return None


@pytest.fixture
def fake_gopay() -> Iterator[FakeGoPay]:
    """A running fake GoPay gateway on loopback (a test double, see the module docstring)."""
    port = find_free_port()
    fake = FakeGoPay(port)
    with ServerThread(fake.app, port):
        yield fake
