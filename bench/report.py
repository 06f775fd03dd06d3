"""The table the benchmarks print: one row a figure, with its baseline, target and verdict."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None  # None: a figure for information, no target

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("pass" if self.ok else "MISS")


HEADERS = ("measure", "value", "baseline", "ratio", "target", "")


def render(rows: list[Row]) -> str:
    """A Markdown table, readable in a terminal and pasteable into README."""
    cells = [HEADERS] + [
        (r.measure, r.value, r.baseline, r.ratio, r.target, r.verdict) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def table(headers: tuple[str, ...], lines: list[tuple[str, ...]]) -> str:
    """A Markdown table of any columns (the growth figures have more than a `Row`)."""
    cells = [headers, *lines]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(row) for row in lines])
