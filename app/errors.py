"""Application errors; one handler renders them as JSON for /api and as a page elsewhere."""

from app.i18n import N_


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class TooLarge(AppError):
    status_code = 413
    code = "too_large"


class InvalidInput(AppError):
    status_code = 422
    code = "invalid"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 60):
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientStorage(AppError):
    """The disk that holds uploads while they are read is full."""

    status_code = 507
    code = "insufficient_storage"

    def __init__(self) -> None:
        super().__init__(
            N_("The server has no room for the files just now. Try again later, or send "
               "smaller files.")
        )  # fmt: skip


class KeyIntegrityFailure(AppError):
    """Stored key material failed its integrity check: nothing is sealed to it or opened."""

    status_code = 500
    code = "key_integrity_failure"

    def __init__(self) -> None:
        super().__init__(
            N_("The organisation's keys failed their integrity check, so this cannot be done "
               "now. The operator has been told in the log; you can report to the Ministry of "
               "Justice's external channel.")
        )  # fmt: skip
