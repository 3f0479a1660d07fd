"""Jinja2 rendering of pages and e-mails, translated into the request's language."""

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import i18n

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"

environment = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]


def request_language(request: Request) -> str:
    return i18n.pick_language(request.query_params.get("lang"))


def url_in_language(path: str, language: str, **params: str) -> str:
    """A link that keeps the page's language; Czech is the default and needs no parameter."""
    if language != i18n.DEFAULT_LANGUAGE:
        params = {**params, "lang": language}
    return f"{path}?{urlencode(params)}" if params else path


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    language = request_language(request)
    i18n.set_language(language)
    other = "en" if language == "cs" else "cs"
    values = {
        "request": request,
        "lang": language,
        "url": lambda path, **params: url_in_language(path, language, **params),
        "switch_language_url": url_in_language(request.url.path, other),
        "other_language": other,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        **(context or {}),
    }
    html = environment.get_template(name).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def render_mail(name: str, **context: Any) -> tuple[str, str]:
    """Subject and text of a mail in Czech followed by English; the first line is the subject."""
    parts: list[tuple[str, str]] = []
    saved = i18n.current_language()
    try:
        for language in i18n.LANGUAGES:
            i18n.set_language(language)
            text = environment.get_template(f"mail/{name}.txt").render(lang=language, **context)
            subject, _, body = text.strip().partition("\n")
            parts.append((subject.strip(), body.strip()))
    finally:
        i18n.set_language(saved)
    subject = " / ".join(subject for subject, _ in parts)
    body = "\n\n---\n\n".join(body for _, body in parts)
    return subject, body + "\n"


def render_mail_footer(contact: Any) -> str:
    """The operator's support contact and status line under a mail, in Czech then English."""
    if contact is None:
        return ""
    support = ", ".join(value for value in (contact.support_email, contact.support_phone) if value)
    statuses = {
        "cs": contact.status_cs or contact.status_en,
        "en": contact.status_en or contact.status_cs,
    }
    lines: list[str] = []
    saved = i18n.current_language()
    try:
        for language in i18n.LANGUAGES:
            i18n.set_language(language)
            text = environment.get_template("mail_footer.txt").render(
                lang=language, support=support, status=statuses[language]
            )
            lines.extend(line for line in text.splitlines() if line.strip())
    finally:
        i18n.set_language(saved)
    return "\n-- \n" + "\n".join(lines) + "\n" if lines else ""


def redirect(request: Request, path: str, **params: str) -> RedirectResponse:
    """A 303 redirect after a form, keeping the page's language."""
    target = url_in_language(path, request_language(request), **params)
    return RedirectResponse(target, status_code=303)
