"""A bound on every request body, enforced before and while it is read."""

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import TooLarge
from app.i18n import N_

MESSAGE = N_("The request is too large.")


# Only a multipart body carries files; any other (JSON, a form of fields) is parsed whole in
# memory, so it gets a bound that no text field of ours comes near.
MAX_OTHER_BYTES = 1024 * 1024


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
        max_bytes = self.max_bytes if multipart else self.max_other_bytes
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > max_bytes:
            error = {"code": "too_large", "message": MESSAGE}
            await JSONResponse({"error": error}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise TooLarge(MESSAGE)
            return message

        await self.app(scope, limited_receive, send)
