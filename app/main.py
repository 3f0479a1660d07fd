"""The FastAPI application: middleware, error handlers and routers."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.bodylimit import BodyLimit
from app.config import Settings
from app.db import DatabaseTimeout, create_engine, create_sessionmaker
from app.errors import AppError
from app.headers import content_security_policy
from app.i18n import N_
from app.metrics import RequestMetrics
from app.routers import (
    admin,
    api_auth,
    api_cases,
    api_organisations,
    api_public,
    api_register,
    api_settings,
    api_team,
    billing,
    case_pages,
    export,
    insight_pages,
    intake,
    leaving,
    metrics,
    processor,
    public,
    register_pages,
    team_pages,
)
from app.routers import operator as operator_pages
from app.routers import settings as settings_pages
from app.schemas.organisation import RESERVED_SLUGS
from app.services import courier
from app.services.ratelimit import RateLimiter
from app.templating import redirect, render
from app.worker import run_worker

logger = logging.getLogger("pistalka")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONTENT_SECURITY_POLICY = content_security_policy()


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(
    request: Request, status: int, code: str, message: str, field: str | None = None
) -> Response:
    """The JSON error shape under /api (English), the error page elsewhere (translated)."""
    headers = {"Retry-After": str(60)} if status == 429 else None
    if _is_api(request):
        error: dict[str, object] = {"code": code, "message": message}
        if field is not None:
            error["field"] = field
        return JSONResponse({"error": error}, status_code=status, headers=headers)
    return render(
        request,
        "error.html",
        {"status": status, "message": message},
        status_code=status,
        headers=headers,
    )


def _field_of(error: dict[str, object]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]  # type: ignore[attr-defined]
    return ".".join(location) or "body"


async def _handle_app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)  # noqa: S101
    if exc.code == "not_logged_in" and not _is_api(request):
        return redirect(request, "/login")
    if exc.code == "operator_not_logged_in" and not _is_api(request):
        return redirect(request, "/operator/login")
    response = error_response(request, exc.status_code, exc.code, exc.message, exc.field)
    if retry_after := getattr(exc, "retry_after", None):
        response.headers["Retry-After"] = str(retry_after)
    return response


async def _handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    first = exc.errors()[0] if exc.errors() else {}
    field = _field_of(first)
    message = f"{field}: {first.get('msg', 'invalid value')}"
    response = error_response(request, 422, "invalid", message, field)
    if isinstance(response, JSONResponse) and _is_api(request):
        details = [{"field": _field_of(e), "message": e.get("msg", "")} for e in exc.errors()]
        response = JSONResponse(
            {"error": {"code": "invalid", "message": message, "field": field, "details": details}},
            status_code=422,
        )
    return response


async def _handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    if isinstance(exc.__cause__, AppError):
        # FastAPI answers any error while it reads a form into its parameters as a 400; a body
        # stopped for its size is still a 413.
        return await _handle_app_error(request, exc.__cause__)
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = N_("Not found.") if exc.status_code == 404 else str(exc.detail)
    return error_response(request, exc.status_code, codes.get(exc.status_code, "error"), message)


async def _handle_database_unavailable(request: Request, exc: Exception) -> Response:
    # The database is down or restarting: a clear 503 instead of a 500; the pool discards the
    # connections the server closed, so the service recovers by itself once it is back.
    logger.warning("database unavailable: %s", type(exc).__name__)
    response = error_response(
        request,
        503,
        "database_unavailable",
        N_("The service is temporarily unavailable. Try again in a few minutes."),
    )
    response.headers["Retry-After"] = "30"
    return response


# PostgreSQL shutting down, restarting or starting up (57P01-57P03); class 08 is a lost or
# refused connection. asyncpg's errors for these reach us as a plain DBAPIError.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def database_is_unavailable(exc: DBAPIError) -> bool:
    """Whether a database error means the database is away rather than the request wrong."""
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(sqlstate, str) and (
        sqlstate in UNAVAILABLE_SQLSTATES or sqlstate.startswith("08")
    )


async def _handle_database_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)  # noqa: S101
    if database_is_unavailable(exc):
        return await _handle_database_unavailable(request, exc)
    raise exc  # any other database error is a bug: the server's 500


def is_whistleblower_path(path: str) -> bool:
    """The form (/{slug}), the tracking pages and the whistleblower's API."""
    if path.startswith(("/track", "/api/v1/public/")):
        return True
    segment = path.removeprefix("/")
    return bool(segment) and "/" not in segment and segment not in RESERVED_SLUGS


def _own_origins(request: Request, settings: Settings) -> set[str]:
    public = urlsplit(settings.public_url)
    return {f"{public.scheme}://{public.netloc}", f"{request.url.scheme}://{request.url.netloc}"}


def _is_cross_site(request: Request, settings: Settings) -> bool:
    """A state-changing request sent from another site's page."""
    origin = request.headers.get("origin")
    if request.method in SAFE_METHODS or origin is None:
        return False
    if origin == "null":
        # Pages under Referrer-Policy: no-referrer (the whistleblower's) post with Origin: null;
        # everywhere else the policy is same-origin, so a null origin means a sandboxed frame.
        return not is_whistleblower_path(request.url.path)
    return origin not in _own_origins(request, settings)


class SecurityHeaders:
    """Refuse cross-site state changes; put the security headers on every response.

    Plain ASGI rather than @app.middleware("http"), which runs every request in a task of its
    own and passes the response through a stream: a measurable share of a small request's time.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault(
                    "Referrer-Policy",
                    "no-referrer" if is_whistleblower_path(path) else "same-origin",
                )
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                if not path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
                if settings.secure_cookies:
                    headers.setdefault(
                        "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
                    )
            await send(message)

        request = Request(scope)
        # Cross-site requests that change state are refused before they reach a route.
        if _is_cross_site(request, settings):
            refusal = error_response(
                request, 403, "cross_origin", N_("Cross-site request refused.")
            )
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, *, run_background_worker: bool = False) -> FastAPI:
    """Build the application; `pistalka serve` runs the worker in the same process."""
    settings = settings or Settings()
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = None
        # The worker's statements may take minutes (VACUUM): its own engine does not bound them.
        worker_engine = create_engine(settings, long_statements=True)
        if run_background_worker:
            worker_sessionmaker = create_sessionmaker(worker_engine, settings)
            task = asyncio.create_task(run_worker(worker_sessionmaker, settings, stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # Mails to whistleblowers live only in memory: a last try before they are lost.
            await courier.current().drain()
            await engine.dispose()
            await worker_engine.dispose()

    app = FastAPI(
        title="Píšťalka",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(processor.load_service_contact)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.rate_limiter = RateLimiter()

    # Every file at its limit, plus the form's fields. Added first, so it sits inside the
    # headers middleware below and its 413 reaches the error handlers.
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_files * settings.max_file_bytes + 1024 * 1024
    )

    app.add_middleware(SecurityHeaders, settings=settings)
    app.add_middleware(RequestMetrics)
    if settings.trusted_proxies.strip():
        # Outermost: every layer, the limits included, sees the client the proxy names.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)

    app.add_exception_handler(AppError, _handle_app_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    # Refused or reset connections reach us unwrapped from asyncpg's connect; a pool with every
    # connection taken for too long raises its own TimeoutError.
    unavailable_errors = (
        OperationalError, InterfaceError, ConnectionError, PoolTimeoutError, DatabaseTimeout
    )  # fmt: skip
    for unavailable in unavailable_errors:
        app.add_exception_handler(unavailable, _handle_database_unavailable)
    app.add_exception_handler(DBAPIError, _handle_database_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(api_organisations.router)
    app.include_router(api_auth.router)
    app.include_router(api_cases.router)
    app.include_router(api_settings.router)
    app.include_router(api_team.router)
    app.include_router(api_public.router)
    app.include_router(api_register.router)
    app.include_router(leaving.api)
    app.include_router(billing.api)
    app.include_router(admin.router)
    app.include_router(case_pages.router)
    app.include_router(insight_pages.router)
    app.include_router(register_pages.router)
    app.include_router(team_pages.router)
    app.include_router(settings_pages.router)
    app.include_router(export.router)
    app.include_router(leaving.pages)
    app.include_router(operator_pages.router)
    app.include_router(billing.pages)
    app.include_router(metrics.router)
    app.include_router(public.router)
    app.include_router(processor.router)
    app.include_router(intake.router)  # last: it owns the catch-all /{slug}
    return app
