"""Text that refuses control characters: a line break in a name could split a mail header.

`SingleLine` is a line of text (names, addresses, e-mails, whatever may reach a mail header);
`MultiLine` is a text of several lines (a report, a message), with line breaks as \\n and TAB the
only other control character. With length constraints, put the marker after them, so that it
checks the stripped text and the length errors keep their own wording:
``Annotated[str, StringConstraints(max_length=200), single_line]``.
"""

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Cc: C0 and C1 controls and DEL; Zl, Zp: U+2028 and U+2029, line breaks to some readers.
_BREAKING = frozenset({"Cc", "Zl", "Zp"})


def _refuse_controls(text: str, allowed: str = "") -> str:
    if any(unicodedata.category(c) in _BREAKING and c not in allowed for c in text):
        raise ValueError("control characters and line breaks are not allowed")
    return text


def normalise_lines(text: str) -> str:
    """Line breaks as \\n (textareas send \\r\\n); no other control character but TAB."""
    return _refuse_controls(text.replace("\r\n", "\n").replace("\r", "\n"), allowed="\n\t")


single_line = AfterValidator(_refuse_controls)
multi_line = AfterValidator(normalise_lines)
SingleLine = Annotated[str, single_line]
MultiLine = Annotated[str, multi_line]
