"""The Czech catalogue speaks the glossary's language (docs/glossary.md)."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "docs" / "glossary.md"
NAME = "%(name)s"


def _entries() -> list[tuple[str, str]]:
    """(English, Czech) for every translated form: a plural's English form is its singular."""
    with (LOCALE_DIR / "cs" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="cs")
    entries: list[tuple[str, str]] = []
    for message in catalog:
        if not message.id:
            continue
        english = message.id[0] if isinstance(message.id, tuple) else message.id
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        entries.extend((str(english), str(czech)) for czech in forms)
    return entries


ENTRIES = _entries()


def _table(heading: str) -> Iterator[list[str]]:
    """The body rows of the first table under `heading`, split into cells."""
    section = GLOSSARY.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    for row in rows[2:]:
        yield [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip("|"))]


def _patterns(cell: str) -> list[re.Pattern[str]]:
    found = re.findall(r"`([^`]+)`", cell)
    assert found, f"no pattern in {cell!r}"
    return [re.compile(pattern.replace("\\|", "|"), re.IGNORECASE) for pattern in found]


TERMS = [
    (english, _patterns(matches), _patterns(contains))
    for english, _, matches, contains in _table("Terms")
]
NOT_USED = [(_patterns(banned)[0], instead) for banned, instead, _ in _table("Not used")]


def test_the_glossary_holds_the_words_of_the_specification() -> None:
    glossary = " ".join(english for english, _, _ in TERMS)
    for word in ("organisation", "designated person", "whistleblower", "report", "case"):
        assert word in glossary
    for word in ("tracking code", "acknowledgement", "assessment", "measures", "register"):
        assert word in glossary
    for word in ("operator", "external channel", "recovery key"):
        assert word in glossary


@pytest.mark.parametrize(("term", "english", "czech"), TERMS, ids=[term for term, _, _ in TERMS])
def test_each_term_is_translated_by_its_czech_word(
    term: str, english: list[re.Pattern[str]], czech: list[re.Pattern[str]]
) -> None:
    concerned = [(en, cs) for en, cs in ENTRIES if any(p.search(en) for p in english)]
    assert concerned, f"no English text uses {term!r}: the pattern is out of date"
    wrong = [(en, cs) for en, cs in concerned if not any(p.search(cs) for p in czech)]
    assert wrong == []


@pytest.mark.parametrize(("banned", "instead"), NOT_USED, ids=[i for _, i in NOT_USED])
def test_no_czech_text_uses_a_word_the_glossary_replaced(
    banned: re.Pattern[str], instead: str
) -> None:
    assert [cs for _, cs in ENTRIES if banned.search(cs)] == []


def test_the_glossary_patterns_catch_what_the_review_found() -> None:
    # The old texts the review of the catalogue quoted; each must trip one of the rules.
    old = [
        "Naplánoval(a) osobní schůzku",
        "Zatím neroztříděno",
        "Auditní záznam",
        "Záznam provozovatele",
        "Případ se uchová i po konci doby uchování",
        "prostřednictvím externího systému Ministerstva spravedlnosti",
        "Případ dán pod právní blokaci",
        "Ověřte adresu pro oznámení organizace",
        "Dotčená osoba",
        "Přihlášen jako %(email)s.",
        "Přestupek s pokutou nejméně 100 000 Kč",
        "Novinka k vašemu oznámení",
    ]
    assert [text for text in old if not any(b.search(text) for b, _ in NOT_USED)] == []


def test_an_organisation_name_follows_the_word_organizace_or_a_dash() -> None:
    bare = []
    for english, czech in ENTRIES:
        if NAME not in english:
            continue
        for match in re.finditer(re.escape(NAME), czech):
            if not re.search(r"(organizac\w*:?|–) $", czech[: match.start()], re.IGNORECASE):
                bare.append(czech)
    assert bare == []


def test_no_sentence_ends_with_an_organisation_name() -> None:
    # Many names end with a full stop ("Nováček a.s."): "a.s.." in the mail otherwise.
    ends = [text for pair in ENTRIES for text in pair if f"{NAME}." in text]
    assert ends == []
    templates = [
        path.relative_to(ROOT)
        for path in (ROOT / "templates").rglob("*")
        if path.is_file() and re.search(r"\bname \}\}\.", path.read_text(encoding="utf-8"))
    ]
    assert templates == []
