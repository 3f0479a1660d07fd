"""Small accessible SVG bar charts rendered as strings: no script, no external resource.

The chart is an image with a title for assistive technology; the page shows the same numbers in
a table. Colours are presentation attributes with the values of static/app.css's variables, since
the Content-Security-Policy allows no inline style.
"""

import hashlib
from collections.abc import Sequence
from html import escape

INK = "#1d2433"  # --ink
ACCENT = "#0b6e4f"  # --accent
LINE = "#d8dce5"  # --line

WIDTH = 640
LABEL_WIDTH = 240
VALUE_WIDTH = 56
BAR_HEIGHT = 22
GAP = 8
PADDING = 8
FONT_SIZE = 13
# Longer labels are cut in the picture; the table beside it gives them whole.
MAX_LABEL_CHARS = 30


def _chart_id(title: str, labels: Sequence[str], values: Sequence[int]) -> str:
    # Deterministic, so the same chart renders the same, and distinct per chart on a page.
    source = "\x1f".join([title, *labels, *map(str, values)]).encode()
    return "chart-" + hashlib.sha256(source).hexdigest()[:12]


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _number(value: float) -> str:
    return f"{value:g}"


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """A horizontal bar chart: one labelled bar per value, its number written beside it."""
    if len(labels) != len(values):
        raise ValueError("bar_chart needs one label per value")
    chart_id = _chart_id(title, labels, [round(v) for v in values])
    height = 2 * PADDING + max(len(values), 1) * (BAR_HEIGHT + GAP) - GAP
    bar_space = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 2 * PADDING
    top = max((value for value in values if value > 0), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'aria-labelledby="{chart_id}-title" viewBox="0 0 {WIDTH} {height}" '
        f'preserveAspectRatio="xMinYMin meet" font-family="system-ui, sans-serif" '
        f'font-size="{FONT_SIZE}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<line x1="{LABEL_WIDTH}" y1="0" x2="{LABEL_WIDTH}" y2="{height}" '
        f'stroke="{LINE}" stroke-width="1"/>',
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = PADDING + index * (BAR_HEIGHT + GAP)
        middle = y + BAR_HEIGHT / 2
        length = round(bar_space * value / top, 1) if top and value > 0 else 0
        parts.append(
            f'<g class="bar"><title>{escape(label)}: {_number(value)}</title>'
            f'<text x="{LABEL_WIDTH - PADDING}" y="{middle}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{INK}">{escape(_short(label))}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length}" height="{BAR_HEIGHT}" '
            f'fill="{ACCENT}"/>'
            f'<text x="{LABEL_WIDTH + length + PADDING}" y="{middle}" '
            f'dominant-baseline="middle" fill="{INK}">{_number(value)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
