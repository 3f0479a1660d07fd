"""Invoice and proforma PDFs: the totals, and the Czech essentials readable in the text."""

import io
from dataclasses import replace
from datetime import date

from pypdf import PdfReader

from app.services.invoice_pdf import (
    InvoiceDocument,
    InvoiceLine,
    Party,
    format_amount,
    render_invoice,
    totals,
)

PANGRAM = "Příliš žluťoučký kůň úpěl ďábelské ódy"
SUPPLIER = Party("Píšťalka s.r.o.", "Vodičkova 12\n110 00 Praha 1", "12345678", "CZ12345678")
CUSTOMER = Party("Obec Dolní Lhota", "Náměstí 1, 123 45 Dolní Lhota", "87654321", "CZ87654321")
INVOICE = InvoiceDocument(
    kind="invoice",
    number="2026000017",
    supplier=SUPPLIER,
    customer=CUSTOMER,
    issued_on=date(2026, 3, 5),
    taxable_supply_on=date(2026, 3, 4),
    due_on=date(2026, 3, 19),
    variable_symbol="2026000017",
    lines=[
        InvoiceLine(PANGRAM, 2, 61725, 21),
        InvoiceLine("Školení pověřených osob", 3, 50, 12),
    ],
)
PROFORMA = replace(
    INVOICE,
    kind="proforma",
    number="ZF2026000004",
    variable_symbol="2026000004",
    taxable_supply_on=None,
    bank_account="123456789/0800",
)


def _text(document: InvoiceDocument) -> str:
    reader = PdfReader(io.BytesIO(render_invoice(document)))
    return "\n".join(page.extract_text() for page in reader.pages)


def _words(text: str) -> str:
    return " ".join(text.split())


def test_totals_compute_vat_per_rate_from_the_base() -> None:
    result = totals(INVOICE)
    assert result.by_rate == {21: (123450, 25925), 12: (150, 18)}
    assert (result.base, result.vat, result.total) == (123600, 25943, 149543)


def test_half_a_heller_of_vat_rounds_up() -> None:
    document = replace(INVOICE, lines=[InvoiceLine("a", 1, 50, 21), InvoiceLine("b", 1, 25, 10)])
    # 50 * 21 % = 10.5 and 25 * 10 % = 2.5 hellers; round() would give 10 and 2.
    assert totals(document).by_rate == {21: (50, 11), 10: (25, 3)}


def test_vat_is_rounded_once_per_rate_not_per_line() -> None:
    line = InvoiceLine("a", 1, 10, 21)  # 2.1 hellers of VAT each
    assert totals(replace(INVOICE, lines=[line, line, line])).by_rate == {21: (30, 6)}


def test_amounts_are_formatted_the_czech_way() -> None:
    assert format_amount(123450) == "1 234,50 Kč"
    assert format_amount(5) == "0,05 Kč"
    assert format_amount(123456789) == "1 234 567,89 Kč"
    assert format_amount(-1999, "EUR") == "-19,99 €"


def test_output_is_a_pdf() -> None:
    assert render_invoice(INVOICE).startswith(b"%PDF")


def test_output_is_deterministic_and_small() -> None:
    pdf = render_invoice(INVOICE)
    assert pdf == render_invoice(INVOICE)
    assert len(pdf) < 100_000  # fonts are subset, not embedded whole (~1.4 MB)


def test_invoice_shows_every_essential() -> None:
    text = _text(INVOICE)
    for expected in (
        "Faktura – daňový doklad / Invoice – tax document",
        "Píšťalka s.r.o.",
        "Obec Dolní Lhota",
        "IČO: 12345678",
        "DIČ: CZ12345678",
        "IČO: 87654321",
        "DIČ: CZ87654321",
        "2026000017",
        "5. 3. 2026",
        "4. 3. 2026",
        "19. 3. 2026",
        PANGRAM,
        "1 234,50 Kč",
        "259,25 Kč",
        "0,18 Kč",
        "1 495,43 Kč",
    ):
        assert expected in text, expected
    assert "Datum uskut. zdan. plnění" in text
    assert "Celkem k úhradě / Total to pay: 1 495,43 Kč" in text
    assert "Uhrazeno" not in text


def test_proforma_says_it_is_not_a_tax_document_and_has_no_taxable_supply_date() -> None:
    text = _text(PROFORMA)
    assert "Zálohová faktura / Proforma invoice" in text
    assert "Není daňový doklad / Not a tax document" in text
    assert "Faktura – daňový doklad" not in text
    assert "zdan. plnění" not in text
    assert "ZF2026000004" in text
    assert "123456789/0800" in text
    assert "2026000004" in text


def test_paid_invoice_says_do_not_pay() -> None:
    text = _text(replace(INVOICE, paid=True))
    assert "Uhrazeno platební kartou – neplaťte / Paid by card – do not pay" in text


def test_customer_without_vat_number_renders() -> None:
    customer = replace(CUSTOMER, dic=None)
    text = _text(replace(INVOICE, customer=customer))
    assert "IČO: 87654321" in text
    assert "DIČ: CZ12345678" in text
    assert "CZ87654321" not in text


def test_long_description_wraps_and_stays_readable() -> None:
    description = " ".join([PANGRAM] * 12)
    document = replace(INVOICE, lines=[InvoiceLine(description, 1, 100000, 21)], note="Děkujeme.")
    text = _text(document)
    assert description not in text  # wrapped onto several lines
    assert _words(description) in _words(text)
    assert len(PdfReader(io.BytesIO(render_invoice(document))).pages) == 1
    assert "Celkem k úhradě / Total to pay: 1 210,00 Kč" in text
    assert "Děkujeme." in text


def test_invoice_paid_by_an_advance_names_the_proforma_and_leaves_nothing_to_pay() -> None:
    text = _text(replace(INVOICE, advance_number="ZF2026000004"))
    assert "Uhrazeno zálohou ZF2026000004 / Paid by advance ZF2026000004: 1 495,43 Kč" in text
    assert "Celkem k úhradě / Total to pay: 0,00 Kč" in text
    assert "Celkem k úhradě / Total to pay: 1 495,43 Kč" not in text
    assert "1 495,43 Kč" in text  # the totals table still shows what was supplied


def test_invoice_paid_by_card_leaves_nothing_to_pay() -> None:
    text = _text(replace(INVOICE, paid=True))
    assert "Celkem k úhradě / Total to pay: 0,00 Kč" in text
