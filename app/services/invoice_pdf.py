"""Invoices and proforma invoices as PDF, with the essentials of a Czech tax document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from fpdf import FPDF, FontFace
from fpdf.enums import TableBordersLayout, XPos, YPos

# Resolved from this module so an editable install and the Docker image need no system fonts.
FONTS_DIR = Path(__file__).resolve().parent.parent / "fonts"
FONT = "DejaVu"

_PAGE_WIDTH = 180.0  # A4 minus 15 mm margins
_CURRENCY_SYMBOLS = {"CZK": "Kč", "EUR": "€"}


@dataclass(frozen=True)
class Party:
    name: str
    address: str
    ico: str
    dic: str | None  # None when not a VAT payer


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    quantity: int
    unit_price: int  # hellers, without VAT
    vat_rate: int  # percent

    @property
    def base(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class InvoiceDocument:
    kind: Literal["invoice", "proforma"]
    number: str
    supplier: Party
    customer: Party
    issued_on: date
    taxable_supply_on: date | None  # DUZP; only an invoice (tax document) has it
    due_on: date
    variable_symbol: str
    lines: list[InvoiceLine]
    currency: str = "CZK"
    bank_account: str | None = None
    paid: bool = False  # paid by card
    advance_number: str | None = None  # paid by the advance of this proforma invoice
    note: str = ""


@dataclass(frozen=True)
class Totals:
    base: int
    vat: int
    total: int
    by_rate: dict[int, tuple[int, int]]  # rate -> (base, vat)


def _vat(base: int, rate: int) -> int:
    # Integer half-up (away from zero) so 10.5 hellers is 11, unlike round()'s half-even.
    hundredths = abs(base) * rate
    vat = (hundredths + 50) // 100
    return vat if base >= 0 else -vat


def totals(document: InvoiceDocument) -> Totals:
    """Sum the lines per VAT rate; VAT is computed from each rate's base (VAT Act § 37)."""
    bases: dict[int, int] = {}
    for line in document.lines:
        bases[line.vat_rate] = bases.get(line.vat_rate, 0) + line.base
    by_rate = {rate: (bases[rate], _vat(bases[rate], rate)) for rate in sorted(bases, reverse=True)}
    base = sum(b for b, _ in by_rate.values())
    vat = sum(v for _, v in by_rate.values())
    return Totals(base=base, vat=vat, total=base + vat, by_rate=by_rate)


def format_amount(hellers: int, currency: str = "CZK") -> str:
    """Format an amount the Czech way: 123450 -> '1 234,50 Kč'."""
    sign = "-" if hellers < 0 else ""
    units, cents = divmod(abs(hellers), 100)
    grouped = f"{units:,}".replace(",", " ")
    return f"{sign}{grouped},{cents:02d} {_CURRENCY_SYMBOLS.get(currency, currency)}"


def format_date(day: date) -> str:
    """Format a date the Czech way: '5. 3. 2026'."""
    return f"{day.day}. {day.month}. {day.year}"


def _title(document: InvoiceDocument) -> str:
    if document.kind == "proforma":
        return "Zálohová faktura / Proforma invoice"
    return "Faktura – daňový doklad / Invoice – tax document"


def _party(pdf: FPDF, x: float, top: float, width: float, heading: str, party: Party) -> float:
    pdf.set_xy(x, top)
    pdf.set_font(FONT, "", 8)
    pdf.set_text_color(90)
    pdf.cell(width, 5, heading, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(width, 5, party.name, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(width, 4.5, party.address, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.cell(width, 4.5, f"IČO: {party.ico}", new_x=XPos.LEFT, new_y=YPos.NEXT)
    if party.dic:
        pdf.cell(width, 4.5, f"DIČ: {party.dic}", new_x=XPos.LEFT, new_y=YPos.NEXT)
    return pdf.get_y()


def _details(document: InvoiceDocument) -> list[tuple[str, str]]:
    rows = [("Datum vystavení / Date of issue", format_date(document.issued_on))]
    if document.taxable_supply_on is not None:
        rows.append(
            (
                "Datum uskut. zdan. plnění / Date of taxable supply",
                format_date(document.taxable_supply_on),
            )
        )
    rows.append(("Datum splatnosti / Due date", format_date(document.due_on)))
    rows.append(("Variabilní symbol / Variable symbol", document.variable_symbol))
    if document.bank_account:
        rows.append(("Bankovní účet / Bank account", document.bank_account))
    return rows


def render_invoice(document: InvoiceDocument) -> bytes:
    """Render an invoice or proforma invoice as a PDF."""
    money = document.currency
    summary = totals(document)
    title = _title(document)

    pdf = FPDF(format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font(FONT, "", FONTS_DIR / "DejaVuSans.ttf")
    pdf.add_font(FONT, "B", FONTS_DIR / "DejaVuSans-Bold.ttf")
    # A fixed creation date (and so a content-derived file ID) keeps the output reproducible.
    pdf.set_creation_date(datetime(*document.issued_on.timetuple()[:3], tzinfo=UTC))
    pdf.set_title(f"{title} {document.number}")
    pdf.set_author(document.supplier.name)
    pdf.set_lang("cs")
    pdf.add_page()

    pdf.set_font(FONT, "B", 15)
    pdf.cell(0, 8, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if document.kind == "proforma":
        pdf.set_font(FONT, "B", 10)
        pdf.cell(
            0, 6, "Není daňový doklad / Not a tax document", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    pdf.set_font(FONT, "", 10)
    pdf.cell(0, 6, f"Číslo / Number: {document.number}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    top = pdf.get_y()
    column = (_PAGE_WIDTH - 6) / 2
    bottom = max(
        _party(pdf, pdf.l_margin, top, column, "Dodavatel / Supplier", document.supplier),
        _party(
            pdf, pdf.l_margin + column + 6, top, column, "Odběratel / Customer", document.customer
        ),
    )
    pdf.set_xy(pdf.l_margin, bottom + 5)

    pdf.set_font(FONT, "", 9)
    for label, value in _details(document):
        pdf.cell(85, 5, label)
        pdf.cell(0, 5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)

    bold = FontFace(emphasis="BOLD")
    pdf.set_font(FONT, "", 8.5)
    with pdf.table(
        col_widths=(78, 20, 30, 17, 35),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=bold,
        line_height=4.5,
        padding=1.2,
        width=_PAGE_WIDTH,
    ) as table:
        table.row(
            (
                "Popis / Description",
                "Množství / Qty",
                "Cena za jedn. / Unit price",
                "DPH / VAT",
                "Základ / Base",
            )
        )
        for line in document.lines:
            table.row(
                (
                    line.description,
                    str(line.quantity),
                    format_amount(line.unit_price, money),
                    f"{line.vat_rate} %",
                    format_amount(line.base, money),
                )
            )
    pdf.ln(5)

    with pdf.table(
        col_widths=(45, 45, 45, 45),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=bold,
        line_height=4.5,
        padding=1.2,
        width=_PAGE_WIDTH,
    ) as table:
        table.row(("Sazba DPH / VAT rate", "Základ / Base", "DPH / VAT", "Celkem / Total"))
        for rate, (base, vat) in summary.by_rate.items():
            table.row(
                (
                    f"{rate} %",
                    format_amount(base, money),
                    format_amount(vat, money),
                    format_amount(base + vat, money),
                )
            )
        row = table.row()
        for text in (
            "Celkem / Total",
            format_amount(summary.base, money),
            format_amount(summary.vat, money),
            format_amount(summary.total, money),
        ):
            row.cell(text, style=bold)
    pdf.ln(6)

    settled = document.paid or document.advance_number is not None
    if document.advance_number is not None:
        pdf.set_font(FONT, "", 10)
        pdf.cell(
            0,
            6,
            f"Uhrazeno zálohou {document.advance_number} / Paid by advance "
            f"{document.advance_number}: {format_amount(summary.total, money)}",
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    pdf.set_font(FONT, "B", 12)
    pdf.cell(
        0,
        7,
        f"Celkem k úhradě / Total to pay: {format_amount(0 if settled else summary.total, money)}",
        align="R",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    if settled:
        pdf.set_font(FONT, "B", 11)
        pdf.set_text_color(0, 110, 50)
        pdf.cell(
            0,
            7,
            "Uhrazeno platební kartou – neplaťte / Paid by card – do not pay"
            if document.paid
            else "Uhrazeno zálohou – neplaťte / Paid by the advance – do not pay",
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_text_color(0)
    if document.note:
        pdf.ln(4)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 4.5, document.note, align="L")

    return bytes(pdf.output())
