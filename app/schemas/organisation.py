import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.schemas.text import single_line

# Every first path segment of the application's own routes (a test compares this with the
# routes), and words a new page or a well-known file may want.
RESERVED_SLUGS = frozenset(
    {
        "about", "account", "admin", "api", "app", "assets", "auth", "cases", "dashboard",
        "docs", "favicon.ico", "healthz", "help", "info", "invite", "login", "logout", "metrics",
        "openapi", "openapi.json", "operator", "organisations", "pricing", "profile",
        "recovery", "redoc", "register", "register-of-reports", "robots.txt", "settings",
        "static", "sub-processors", "support", "terms", "track", "verify", "well-known", "www",
    }
)  # fmt: skip
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,38})[a-z0-9]")


def valid_ico(value: str) -> bool:
    """Czech company number: 8 digits, the last a mod-11 check over weights 8..2."""
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        return False
    total = sum(
        int(digit) * weight for digit, weight in zip(value[:7], range(8, 1, -1), strict=True)
    )
    check = (11 - total % 11) % 10
    return check == int(value[7])


def _check_ico(value: str) -> str:
    if not valid_ico(value):
        raise ValueError("IČO must be 8 digits with a valid check digit")
    return value


def _check_slug(value: str) -> str:
    if not _SLUG.fullmatch(value) or "--" in value:
        raise ValueError(
            "use 3-40 lowercase letters, digits and single hyphens, not at the start or end"
        )
    if value in RESERVED_SLUGS:
        raise ValueError("this address is reserved")
    return value


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), single_line
]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=40),
                 AfterValidator(_check_slug)]  # fmt: skip
Ico = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_check_ico)]
Password = Annotated[str, Field(min_length=10, max_length=256)]


class OrganisationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: Name
    ico: Ico
    address: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), single_line
    ]
    email: Annotated[EmailStr, Field(max_length=254)]
    password: Password


class OrganisationCreated(BaseModel):
    slug: str
    recovery_key: str
    form_url: str
