"""An organisation's settings: its form's rules, who may embed it, its public information page."""

import ipaddress
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from app.schemas.text import normalise_lines

MAX_EMBED_ORIGINS = 20
MAX_INFO_LENGTH = 5000
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
DEFAULT_PORTS = {"https": 443, "http": 80}

# The whole origin, checked before anything else: only these characters can reach the
# Content-Security-Policy header, so no quote, space, ';', ',' or '*' can inject a directive.
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[::1\]|[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?/?"
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _valid_host(host: str) -> bool:
    """A DNS name of letters, digits and hyphens, or a dotted IPv4 address."""
    if len(host) > 253:
        return False
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    if labels[-1].isdigit():
        # Digits in the last label make it an IPv4 address or nothing (no "10.1", no "1.2.3.04").
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return True


def _ascii_host(origin: str) -> str:
    """Internationalised host names become their xn-- form, which browsers compare with."""
    scheme, separator, rest = origin.partition("://")
    if rest.isascii() or not separator:
        return origin
    host, colon, port = rest.partition(":")
    try:
        ascii_host = host.rstrip("/").encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"not a valid host name: {origin!r}") from exc
    return f"{scheme}://{ascii_host}{colon}{port}"


def normalise_origin(value: str) -> str:
    """`https://host[:port]` in lower case without a trailing slash; ValueError otherwise."""
    origin = _ascii_host(value.strip().lower())
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        raise ValueError(
            f"{value!r} is not an origin: use https://host or https://host:port, "
            "without a path, query, spaces or wildcards"
        )
    scheme, host, port_text = match["scheme"], match["host"], match["port"]
    if host not in LOOPBACK_HOSTS:
        if scheme != "https":
            raise ValueError(f"{value!r}: only https:// origins may embed the form")
        if not _valid_host(host):
            raise ValueError(f"{value!r}: the host must be a domain name or an IPv4 address")
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{value!r}: the port must be between 1 and 65535")
    suffix = "" if port is None or port == DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{suffix}"


def _normalise_text(value: Any) -> Any:
    """Line breaks as \\n (textareas send \\r\\n), no other control characters, no outer blanks."""
    return normalise_lines(value).strip() if isinstance(value, str) else value


# The length is checked after the line breaks are normalised: the validator wraps the constraint.
InfoText = Annotated[str, Field(max_length=MAX_INFO_LENGTH), BeforeValidator(_normalise_text)]


class OrganisationSettings(BaseModel):
    """What a designated person may change about the organisation's form and information page."""

    model_config = ConfigDict(extra="forbid")

    accepts_anonymous: bool
    only_own_people: bool
    embed_origins: Annotated[list[str], Field(max_length=MAX_EMBED_ORIGINS)]
    info_how_to_report: InfoText
    info_designated_persons: InfoText

    @field_validator("embed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        # dict.fromkeys keeps the first occurrence of each origin in the order given.
        return list(dict.fromkeys(normalise_origin(origin) for origin in origins))


class OrganisationSettingsRead(BaseModel):
    accepts_anonymous: bool
    only_own_people: bool
    embed_origins: list[str]
    info_how_to_report: str
    info_designated_persons: str
    slug: str
    name: str
    form_url: str
    info_url: str
    embed_snippet: str
