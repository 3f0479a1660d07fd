"""Prometheus metrics of this process: requests by route template, the outbox, purges, logins.

No label may identify a whistleblower or an organisation's reports: requests are counted by the
route's template (`/track/{code}`, never the code), never by path, address or organisation.
"""

import time
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.models.base import utcnow
from app.models.outbox import OutboxMail

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "pistalka_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "pistalka_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    registry=REGISTRY,
)
OUTBOX_MAILS = Gauge("pistalka_outbox_mails", "Mails waiting in the outbox.", registry=REGISTRY)
OUTBOX_AGE = Gauge(
    "pistalka_outbox_oldest_age_seconds",
    "Age of the oldest mail waiting in the outbox (0 when it is empty).",
    registry=REGISTRY,
)
PURGE_RUNS = Counter(
    "pistalka_purge_runs",
    "Retention purges run by this process's worker, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
LOGIN_FAILURES = Counter(
    "pistalka_login_failures",
    "Failed logins on every login form and the API, by the error answered.",
    ["code"],
    registry=REGISTRY,
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _route(scope: Scope) -> str:
    """The template of the route that answered; never the path, which carries slugs and codes."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    root = scope.get("root_path", "")
    if scope["path"].startswith(f"{root}/static/"):
        return "/static"
    return "unmatched"


class RequestMetrics:
    """Count every HTTP request and time it, labelled by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


async def exposition(session: AsyncSession) -> bytes:
    """The metrics in Prometheus's text format, the outbox measured now."""
    count, oldest = (
        await session.execute(select(func.count(), func.min(OutboxMail.created_at)))
    ).one()
    OUTBOX_MAILS.set(count)
    OUTBOX_AGE.set(_age(oldest))
    return generate_latest(REGISTRY)


def _age(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:  # SQLite gives naive UTC
        return (utcnow().replace(tzinfo=None) - moment).total_seconds()
    return (utcnow() - moment).total_seconds()
