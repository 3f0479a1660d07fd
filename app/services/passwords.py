"""The one password rule: its length and how hard it is to guess.

Guessability is estimated by zxcvbn (patterns, keyboard walks, repeats, common passwords and
words), with common Czech password words and the person's own details as words it knows.
"""

import asyncio
import re
import unicodedata

from zxcvbn import zxcvbn

from app.errors import InvalidInput
from app.i18n import N_

MIN_LENGTH = 10
MAX_LENGTH = 256
# zxcvbn's "safely unguessable": about 10^8 guesses or more.
MIN_SCORE = 3
# zxcvbn's work grows steeply with length; a prefix guessed no easier is enough to judge.
ESTIMATED_LENGTH = 72
CZECH_WORDS = (
    "heslo", "hesla", "jaro", "léto", "podzim", "zima", "praha", "brno", "ostrava", "plzeň",
    "olomouc", "liberec", "kočka", "kocour", "pes", "pejsek", "sparta", "slavia", "baník",
    "ahoj", "nazdar", "čau", "miláček", "láska", "lásko", "zlatíčko", "sluníčko", "beruška",
    "princezna", "srdíčko", "kuře", "myška", "medvídek", "tajné", "tajnéheslo", "mojeheslo",
    "heslíčko", "admin", "uživatel", "petr", "jana", "pavel", "tereza", "tomáš", "lucie",
    "jiří", "martin", "hokej", "fotbal", "pivo", "škoda", "čechy", "morava", "česko",
    "republika", "prosinec", "leden", "květen", "pondělí", "firma", "organizace", "oznámení",
    "píšťalka", "pistalka", "whistle",
)  # fmt: skip
TOO_SHORT = N_("The password needs 10 to 256 characters.")
TOO_GUESSABLE = N_(
    "This password is too easy to guess. Use a longer phrase of several unusual words; avoid "
    "common words and passwords, names, dates, repeated characters and sequences."
)
OWN_DETAILS = N_(
    "This password is too easy to guess: it is built from your e-mail or the organisation's "
    "name. Use a longer phrase of several unusual words."
)


def _without_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))


_KNOWN_WORDS = sorted({form for word in CZECH_WORDS for form in (word, _without_accents(word))})


def _own_words(details: tuple[str, ...]) -> list[str]:
    """The person's details and their parts (e-mail local part, domain labels, name words)."""
    words: set[str] = set()
    for detail in details:
        for part in re.split(r"[\s@.,\-_+]+", detail.lower()):
            if len(part) >= 3:
                words.update((part, _without_accents(part)))
        words.add(detail.lower())
    return sorted(words)


def weakness(password: str, *details: str) -> str | None:
    """Why the password may not be used (a message), or None when it may."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return TOO_SHORT
    own = _own_words(details)
    result = zxcvbn(password[:ESTIMATED_LENGTH], user_inputs=_KNOWN_WORDS + own)
    if result["score"] >= MIN_SCORE:
        return None
    own_set = set(own)
    if any(match.get("matched_word") in own_set for match in result["sequence"]):
        return OWN_DETAILS
    return TOO_GUESSABLE


async def check_password(password: str, *details: str, field: str = "password") -> None:
    """Refuse a password that breaks the rule; the estimate runs off the event loop."""
    problem = await asyncio.to_thread(weakness, password, *details)
    if problem is not None:
        raise InvalidInput(
            problem, code="weak_password" if problem != TOO_SHORT else "invalid", field=field
        )
