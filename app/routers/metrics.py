"""/metrics for Prometheus: to the loopback address, or to whoever has the metrics token."""

import hmac

from fastapi import APIRouter, Request, Response

from app import metrics
from app.config import Settings
from app.db import SessionDep
from app.deps import SettingsDep
from app.errors import Forbidden
from app.i18n import N_

router = APIRouter(include_in_schema=False)
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def _may_read_metrics(request: Request, settings: Settings) -> bool:
    """A scraper on this machine, or one that presents PISTALKA_METRICS_TOKEN.

    A request a proxy forwarded comes from the loopback address too: it carries
    X-Forwarded-For, and needs the token like any other.
    """
    token = settings.metrics_token
    if token is not None:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            return True
    peer = request.client.host if request.client else ""
    return peer in LOOPBACK and "x-forwarded-for" not in request.headers


@router.get("/metrics")
async def show_metrics(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    if not _may_read_metrics(request, settings):
        raise Forbidden(N_("Metrics are served to this machine or with the metrics token."))
    return Response(await metrics.exposition(session), media_type=metrics.CONTENT_TYPE)
