"""A small client of GoPay's REST API (https://doc.gopay.com): card payments and their recurrence.

Only what the service needs: create a card payment (optionally the first of an ON_DEMAND
recurrence), read its status, charge a further recurrence payment and stop the recurrence.
Every call carries an OAuth2 client-credentials token (scope payment-all), cached until shortly
before it expires and fetched again once when GoPay answers 401 or 403.

Notifications: when a payment changes state, GoPay calls the payment's notification_url with
`GET ?id=<payment id>` (and `&parent_id=<initial payment id>` for a recurrence payment), possibly
more than once. The request carries no state and no signature, so the app must treat it only as a
hint and call `status(id)` to learn the state; this client has nothing else to do for it.

Every failure (network, timeout, non-2xx answer, malformed answer) raises GatewayError whose
message names the operation, the HTTP status and GoPay's error codes, never payer data or secrets.
"""

import asyncio
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

# GoPay's error codes the app may act on (doc.gopay.com, "List of errors").
RECURRENCE_FAILED = 340  # the card was declined for an on-demand recurrence payment
RECURRENCE_STOPPED = 342

# Refresh a cached token this long before GoPay says it expires (tokens live 30 minutes).
TOKEN_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class GatewayPayment:
    id: int
    state: str  # CREATED, PAYMENT_METHOD_CHOSEN, AUTHORIZED, PAID, CANCELED, TIMEOUTED, REFUNDED…
    amount: int  # in hellers
    currency: str
    order_number: str
    gw_url: str | None  # where to send the payer (only meaningful on create)
    parent_id: int | None  # for a recurrence payment: the initial payment
    recurrence_state: str | None  # REQUESTED, STARTED, STOPPED (initial payment with recurrence)


class GatewayError(Exception):
    """GoPay could not be reached or refused the call; the message holds no payer data."""

    def __init__(
        self, message: str, *, status_code: int | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


class GoPay:
    def __init__(
        self,
        *,
        base_url: str,
        goid: int,
        client_id: str,
        client_secret: str,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._goid = goid
        self._credentials = (client_id, client_secret)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()

    async def create_payment(
        self,
        *,
        amount: int,
        currency: str,
        order_number: str,
        description: str,
        payer_email: str,
        return_url: str,
        notification_url: str,
        recurring_until: date | None = None,
        language: str = "CS",
    ) -> GatewayPayment:
        """Create a card payment; with recurring_until, the first of an ON_DEMAND recurrence."""
        body: dict[str, Any] = {
            "payer": {
                "allowed_payment_instruments": ["PAYMENT_CARD"],
                "default_payment_instrument": "PAYMENT_CARD",
                "contact": {"email": payer_email},
            },
            "target": {"type": "ACCOUNT", "goid": self._goid},
            "amount": amount,
            "currency": currency,
            "order_number": order_number,
            "order_description": description,
            "items": [{"type": "ITEM", "name": description, "amount": amount, "count": 1}],
            "callback": {"return_url": return_url, "notification_url": notification_url},
            "lang": language,
        }
        if recurring_until is not None:
            body["recurrence"] = {
                "recurrence_cycle": "ON_DEMAND",
                "recurrence_date_to": recurring_until.isoformat(),
            }
        data = await self._call("create payment", "POST", "/api/payments/payment", json=body)
        return _payment(data, "create payment")

    async def status(self, payment_id: int) -> GatewayPayment:
        """The payment as GoPay sees it now."""
        data = await self._call("status", "GET", f"/api/payments/payment/{payment_id}")
        return _payment(data, "status")

    async def create_recurrence(
        self, parent_id: int, *, amount: int, currency: str, order_number: str, description: str
    ) -> GatewayPayment:
        """Charge the card of an ON_DEMAND recurrence again; a decline raises RECURRENCE_FAILED."""
        body = {
            "amount": amount,
            "currency": currency,
            "order_number": order_number,
            "order_description": description,
            "items": [{"type": "ITEM", "name": description, "amount": amount, "count": 1}],
        }
        path = f"/api/payments/payment/{parent_id}/create-recurrence"
        data = await self._call("create recurrence", "POST", path, json=body)
        return _payment(data, "create recurrence")

    async def void_recurrence(self, parent_id: int) -> None:
        """Stop the recurrence so that no further payment can be charged."""
        path = f"/api/payments/payment/{parent_id}/void-recurrence"
        data = await self._call("void recurrence", "POST", path)
        if data.get("result") != "FINISHED":
            raise GatewayError("GoPay void recurrence: the result is not FINISHED")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        token = await self._access_token(operation)
        response = await self._send(operation, method, path, token, json)
        if response.status_code in (401, 403):
            # An expired or revoked token: GoPay may end it before expires_in says.
            self._forget_token(token)
            token = await self._access_token(operation)
            response = await self._send(operation, method, path, token, json)
        return _answer(response, operation)

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        token: str,
        json: dict[str, Any] | None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if json is None:
            # GoPay documents this content type for the calls without a body.
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            return await self._http.request(method, path, headers=headers, json=json)
        except httpx.HTTPError as exc:
            raise GatewayError(f"GoPay {operation}: {type(exc).__name__}") from exc

    async def _access_token(self, operation: str) -> str:
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._token_expires_at:
                return self._token
            try:
                response = await self._http.post(
                    "/api/oauth2/token",
                    auth=self._credentials,
                    data={"grant_type": "client_credentials", "scope": "payment-all"},
                )
            except httpx.HTTPError as exc:
                raise GatewayError(f"GoPay token for {operation}: {type(exc).__name__}") from exc
            data = _answer(response, f"token for {operation}")
            token = data.get("access_token")
            expires_in = data.get("expires_in")
            if not isinstance(token, str) or not token or not isinstance(expires_in, int):
                raise GatewayError(f"GoPay token for {operation}: malformed answer")
            self._token = token
            self._token_expires_at = time.monotonic() + expires_in - TOKEN_MARGIN_SECONDS
            return token

    def _forget_token(self, token: str) -> None:
        # Another call may already have replaced it; only drop the one that was refused.
        if self._token == token:
            self._token = None


def _answer(response: httpx.Response, operation: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer, or GatewayError with the status and GoPay's codes."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not response.is_success:
        codes = _error_codes(data)
        detail = f" ({', '.join(codes)})" if codes else ""
        raise GatewayError(
            f"GoPay {operation}: HTTP {response.status_code}{detail}",
            status_code=response.status_code,
            error_code=_first_error_code(data),
        )
    if not isinstance(data, dict):
        raise GatewayError(f"GoPay {operation}: malformed answer", status_code=response.status_code)
    return data


def _errors(data: object) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("errors"), list):
        return []
    return [error for error in data["errors"] if isinstance(error, dict)]


def _error_codes(data: object) -> list[str]:
    # Only the codes, names and field names: GoPay's messages may quote what was sent.
    codes = []
    for error in _errors(data):
        parts = [str(error[key]) for key in ("error_code", "error_name") if error.get(key)]
        if isinstance(error.get("field"), str):
            parts.append(f"field {error['field']}")
        codes.append(" ".join(parts))
    return [code for code in codes if code]


def _first_error_code(data: object) -> int | None:
    for error in _errors(data):
        if _is_int(error.get("error_code")):
            return int(error["error_code"])
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _payment(data: dict[str, Any], operation: str) -> GatewayPayment:
    recurrence = data.get("recurrence")
    recurrence_state = recurrence.get("recurrence_state") if isinstance(recurrence, dict) else None
    gw_url = data.get("gw_url")
    parent_id = data.get("parent_id")
    fields_ok = (
        _is_int(data.get("id"))
        and isinstance(data.get("state"), str)
        and _is_int(data.get("amount"))
        and isinstance(data.get("currency"), str)
        and isinstance(data.get("order_number"), str)
        and (gw_url is None or isinstance(gw_url, str))
        and (parent_id is None or _is_int(parent_id))
        and (recurrence_state is None or isinstance(recurrence_state, str))
    )
    if not fields_ok:
        raise GatewayError(f"GoPay {operation}: malformed answer")
    return GatewayPayment(
        id=data["id"],
        state=data["state"],
        amount=data["amount"],
        currency=data["currency"],
        order_number=data["order_number"],
        # GoPay's own examples pad the URL with spaces.
        gw_url=gw_url.strip() if gw_url else None,
        parent_id=parent_id,
        recurrence_state=recurrence_state,
    )
