import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

RESERVED_SLUGS = frozenset(
    {
        "about", "account", "admin", "api", "app", "assets", "auth", "dashboard", "docs",
        "favicon.ico", "healthz", "help", "info", "invite", "login", "logout", "metrics",
        "openapi.json", "operator", "pricing", "profile", "recovery", "redoc", "register",
        "robots.txt",
        "settings", "static", "sub-processors", "support", "terms", "track", "verify", "www",
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


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=40),
                 AfterValidator(_check_slug)]  # fmt: skip
Ico = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_check_ico)]
Password = Annotated[str, Field(min_length=10, max_length=256)]


class OrganisationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: Annotated[Text, Field(max_length=200)]
    ico: Ico
    address: Annotated[Text, Field(max_length=500)]
    email: Annotated[EmailStr, Field(max_length=254)]
    password: Password


class OrganisationCreated(BaseModel):
    slug: str
    recovery_key: str
    form_url: str
