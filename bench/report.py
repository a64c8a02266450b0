"""Markdown tables and target checks for bench/RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One measured case; ``values`` maps column name to a number or text."""

    name: str
    values: dict


@dataclass
class Target:
    """One target of the issue: ``measured`` compared with ``limit`` (``at_least`` or not)."""

    what: str
    measured: float | None
    limit: float
    at_least: bool = True
    unit: str = "×"

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.limit if self.at_least else self.measured <= self.limit

    def line(self) -> str:
        sign = "≥" if self.at_least else "≤"
        if self.measured is None:
            return f"| {self.what} | n/a | {sign} {fmt(self.limit)}{self.unit} | not measured |"
        verdict = "met" if self.met else "**missed**"
        return f"| {self.what} | {fmt(self.measured)}{self.unit} | {sign} {fmt(self.limit)}{self.unit} | {verdict} |"


@dataclass
class Section:
    title: str
    intro: str = ""
    tables: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"## {self.title}", ""]
        if self.intro:
            out += [self.intro, ""]
        for table in self.tables:
            out += [table, ""]
        if self.targets:
            out += [targets_table(self.targets), ""]
        for note in self.notes:
            out += [f"- {note}"]
        if self.notes:
            out.append("")
        return "\n".join(out)


def fmt(value) -> str:
    """Numbers the way a reader scans them: 3 significant figures, thousands grouped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def table(rows: list[Row], columns: list[str], first: str = "case") -> str:
    head = f"| {first} | " + " | ".join(columns) + " |"
    rule = "|" + "---|" * (len(columns) + 1)
    body = [f"| {r.name} | " + " | ".join(fmt(r.values.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def targets_table(targets: list[Target]) -> str:
    return "\n".join(["| target | measured | limit | verdict |", "|---|---|---|---|",
                      *(t.line() for t in targets)])


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def document(title: str, preamble: list[str], sections: list[Section]) -> str:
    parts = [f"# {title}", "", *preamble, ""]
    parts += [s.markdown() for s in sections]
    return "\n".join(parts).rstrip() + "\n"
