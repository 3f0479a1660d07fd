"""The Content-Security-Policy of every page; only the form may name who embeds it."""

from collections.abc import Sequence


def content_security_policy(
    frame_ancestors: Sequence[str] = (), form_targets: Sequence[str] = ()
) -> str:
    """No inline script, nothing from another host; framing only by the given origins, forms
    sent (or redirected) only to this service and the given origins."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    targets = " ".join(["'self'", *form_targets])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"form-action {targets}; base-uri 'none'; frame-ancestors {ancestors}"
    )
