"""Reading what the whistleblower sends: JSON or multipart with files, bounded; rate limits."""

import errno
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from typing import BinaryIO, TypeVar, cast, get_origin

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from app.config import Settings
from app.crypto.spool import SealedSpool
from app.errors import AppError, InsufficientStorage, InvalidInput, TooLarge
from app.i18n import N_
from app.metrics import LOGIN_FAILURES
from app.services.attachments import IncomingFile
from app.services.ratelimit import RateLimiter

Model = TypeVar("Model", bound=BaseModel)
MAX_JSON_BYTES = 256 * 1024
MAX_FIELDS = 40
MAX_FIELD_BYTES = 64 * 1024
CHECKBOX_TRUE = {"on", "true", "1", "yes"}
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextmanager
def failed_logins_limited(request: Request, settings: Settings) -> Iterator[None]:
    """Failed logins per address, every login form and the API together, whatever the e-mail.

    The attempt is counted before it runs, so concurrent guesses cannot overrun the budget,
    and given back when it succeeds: people logging in from one office are not limited.
    """
    try:
        rate_limit(request, "login", settings.login_attempts_per_10_minutes, 600)
        yield
    except AppError as exc:
        LOGIN_FAILURES.labels(exc.code).inc()
        raise
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.refund("login", _address(request))


def retry_after_header(exc: AppError) -> dict[str, str] | None:
    """The Retry-After header of a refusal that says when to try again."""
    retry_after = getattr(exc, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after else None


def rate_limit(request: Request, bucket: str, limit: int, window_seconds: int) -> None:
    """Count a request against the client's limit; the address is only ever hashed."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(bucket, _address(request), limit=limit, window_seconds=window_seconds)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _read_json(request: Request) -> bytes:
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_JSON_BYTES:
            raise TooLarge(N_("The request is too large."))
    return bytes(body)


def _validate(model: type[Model], value: object, from_json: bool) -> Model:
    try:
        if from_json:
            assert isinstance(value, bytes)  # noqa: S101
            return model.model_validate_json(value)
        return model.model_validate(value)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


class _SealedMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, with each file held in a SealedSpool instead of a plain
    temporary file: an upload never lies readable on the disk while the request is read."""

    spool_dir: str | None = None

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is not None:
            upload.file.close()
            spool = SealedSpool(self.spool_dir)
            upload.file = cast(BinaryIO, spool)
            self._files_to_close_on_error[-1] = spool  # type: ignore[call-overload]


async def read_form(request: Request, settings: Settings) -> FormData:
    """The request's form, parsed within the bounds of a report: fields, their size, files.

    Parsed once per request, so every form route that may carry files must read it here before
    anything calls `request.form()`, which then answers the same form.
    """
    if request._form is not None:  # Starlette's own cache of the parsed form
        return request._form
    try:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await request.form(
                max_files=settings.max_files, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES
            )
        try:
            async with aclosing(request.stream()) as stream:
                parser = _SealedMultiPartParser(
                    request.headers,
                    stream,
                    max_files=settings.max_files,
                    max_fields=MAX_FIELDS,
                    max_part_size=MAX_FIELD_BYTES,
                )
                if settings.spool_dir is not None:
                    parser.spool_dir = str(settings.spool_dir)
                try:
                    form = await parser.parse()
                except OSError as exc:
                    # The parser has closed the spools, which gives their space back.
                    if exc.errno not in DISK_FULL:
                        raise
                    raise InsufficientStorage() from None
        except MultiPartException as exc:
            raise StarletteHTTPException(status_code=400, detail=exc.message) from None
        # Kept where Starlette keeps the form it parsed, so later `request.form()` calls answer
        # it; its spools close, their keys with them, when the request and its form are dropped.
        request._form = form
        return form
    except StarletteHTTPException as exc:
        if "maximum" not in str(exc.detail).lower():
            raise
        raise TooLarge(
            N_(
                "The form is too large: a field is too long, or there are too many fields or files."
            ),
            code="form_too_large",
        ) from None


async def read_submission(
    request: Request,
    settings: Settings,
    model: type[Model],
    *,
    form_fields: frozenset[str] | set[str] = frozenset(),
) -> tuple[Model, list[IncomingFile]]:
    """The validated fields and the uploaded files of a JSON or multipart request."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return _validate(model, await _read_json(request), from_json=True), []
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidInput(N_("Send JSON or a form."), code="unsupported_media_type")
    form = await read_form(request, settings)
    values: dict[str, object] = {}
    files: list[IncomingFile] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if value.filename:  # a file input left empty sends a nameless, empty part
                files.append(IncomingFile(name=value.filename, file=value.file))
            continue
        if name in form_fields:
            continue  # the page's own fields (honeypot, timer, tracking code)
        field = model.model_fields.get(name)
        if field is not None and field.annotation is bool:
            values[name] = value.lower() in CHECKBOX_TRUE
        elif field is not None and get_origin(field.annotation) is list:
            # A group of checkboxes sends one part per ticked box.
            listed = values.setdefault(name, [])
            if value != "" and isinstance(listed, list):
                listed.append(value)
        elif value != "":
            values[name] = value
    return _validate(model, values, from_json=False), files
