"""A bound on every request body, enforced before and while it is read, and the content types
the JSON API accepts for a request that changes something."""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi.routing import iter_route_contexts
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import TooLarge
from app.i18n import N_

logger = logging.getLogger("pistalka")
MESSAGE = N_("The request is too large.")
UNSUPPORTED = N_("Send the request as JSON (application/json).")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Any body but a multipart one sent to a route that takes files is read whole into memory by
# whatever parses it (JSON, a form of fields), so it gets a bound no text of ours comes near.
MAX_OTHER_BYTES = 1024 * 1024

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
FILE_ENDPOINTS: set[Callable[..., Any]] = set()


def takes_files(endpoint: Endpoint) -> Endpoint:
    """Mark a route whose body may carry files: the only kind allowed a body over 1 MiB."""
    FILE_ENDPOINTS.add(endpoint)
    return endpoint


def _endpoint(scope: Scope) -> Callable[..., Any] | None:
    """The endpoint the router will choose for this request, before it runs."""
    for route in iter_route_contexts(scope["app"].routes):
        match, child = route.route.matches(scope)
        if match == Match.FULL:
            endpoint: Callable[..., Any] | None = child.get("endpoint")
            return endpoint
    return None


def _api_refuses(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """A change to the JSON API sent as anything but JSON (or files, to a route taking them).

    A form or a script on another site can send text/plain, a URL-encoded or a multipart body
    without asking first (a CORS "simple request"); JSON it cannot. A request without a body
    carries nothing to refuse.
    """
    if scope["method"] not in STATE_CHANGING or not scope["path"].startswith("/api/"):
        return False
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if not content_type:
        has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
        return has_body
    if content_type == b"application/json":
        return False
    return content_type != b"multipart/form-data" or _endpoint(scope) not in FILE_ENDPOINTS


class BodyLimit:
    """Answer 413 to a declared length over the limit; stop a body that grows past it."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, max_other_bytes: int = MAX_OTHER_BYTES
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_other_bytes = max_other_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            error = {"code": "too_large", "message": MESSAGE}
            await JSONResponse({"error": error}, status_code=413)(scope, receive, send)
            return
        if _api_refuses(scope, headers):
            error = {"code": "unsupported_media_type", "message": UNSUPPORTED}
            await JSONResponse({"error": error}, status_code=415)(scope, receive, send)
            return
        received = 0
        limit: int | None = None

        async def limited_receive() -> Message:
            nonlocal received, limit
            if limit is None:
                # The body is read once the router has chosen the route (it sets the endpoint in
                # the scope): the route decides the bound, not the content type the client chose.
                takes_files = scope.get("endpoint") in FILE_ENDPOINTS
                limit = self.max_bytes if multipart and takes_files else self.max_other_bytes
                if int(declared) > limit:
                    raise TooLarge(MESSAGE)
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise TooLarge(MESSAGE)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except ClientDisconnect:
            # Nobody is left to answer, and nothing of the request (path, address) is logged.
            logger.info("a client went away before its request was read")
