"""A small table model and its two renderings: Markdown and a booktabs LaTeX table.

Cells are pre-formatted text with a bold flag; columns may sit under group headers; rows may be
split into sections (measured / reported) by a rule and a heading.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import groupby


@dataclass
class Cell:
    text: str
    bold: bool = False
    marker: str = ""  # "up" / "down": a significant difference after correction


@dataclass
class Table:
    name: str  # file stem: main, ablation, diagnostics
    title: str
    caption: str
    columns: list[tuple[str, str]]  # (group, column); group "" for ungrouped
    sections: list[tuple[str, list[list[Cell]]]] = field(default_factory=list)  # (heading, rows)
    notes: list[str] = field(default_factory=list)  # numbered notes printed under the table

    def records(self) -> list[dict[str, str]]:
        """Every shown cell, for the machine-readable export."""
        out = []
        for heading, rows in self.sections:
            for row in rows:
                record = {"section": heading}
                for (group, column), cell in zip(self.columns, row, strict=True):
                    record[f"{group} {column}".strip()] = cell.text + {"up": " (sig. higher)", "down": " (sig. lower)"}.get(cell.marker, "")
                out.append(record)
        return out


def format_p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


MD_MARKERS = {"up": " ▲", "down": " ▼", "": ""}
TEX_MARKERS = {"up": r"$^{\uparrow}$", "down": r"$^{\downarrow}$", "": ""}


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def to_markdown(table: Table) -> str:
    headers = [f"{group} {column}".strip() for group, column in table.columns]
    lines = [f"**{table.title}**", "", "| " + " | ".join(map(_md_escape, headers)) + " |",
             "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(headers))) + "|"]
    for heading, rows in table.sections:
        if heading:
            lines.append(f"| *{_md_escape(heading)}* |" + " |" * (len(headers) - 1))
        for row in rows:
            cells = [(f"**{_md_escape(c.text)}**" if c.bold else _md_escape(c.text)) + MD_MARKERS[c.marker] for c in row]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", table.caption] + ([""] + [f"- {note}" for note in table.notes] if table.notes else []))


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "±": r"$\pm$", "Δ": r"$\Delta$", "→": r"$\rightarrow$", "≥": r"$\geq$", "≤": r"$\leq$",
                "∞": r"$\infty$", "λ": r"$\lambda$", "α": r"$\alpha$", "–": "--", "×": r"$\times$",
                "▲": r"$\uparrow$", "▼": r"$\downarrow$", "·": r"$\cdot$"}
_TEX_PATTERN = re.compile("|".join(re.escape(k) for k in _TEX_SPECIAL))


def tex_escape(text: str) -> str:
    """Escape LaTeX specials (``gisa+dif``, ``_``, ``%``, ...) and map the few symbols used here."""
    return _TEX_PATTERN.sub(lambda m: _TEX_SPECIAL[m.group()], text)


def to_latex(table: Table) -> str:
    """A booktabs ``table*``: needs ``booktabs`` only."""
    n = len(table.columns)
    lines = [r"\begin{table*}[t]", r"\centering", r"\small",
             rf"\caption{{{tex_escape(table.title)}. {tex_escape(table.caption)}}}", rf"\label{{tab:{table.name}}}",
             r"\begin{tabular}{l" + "r" * (n - 1) + "}", r"\toprule"]
    groups = [(group, len(list(members))) for group, members in groupby(g for g, _ in table.columns)]
    if any(group for group, _ in groups):
        cells, rules, start = [], [], 1
        for group, width in groups:
            cells.append(rf"\multicolumn{{{width}}}{{c}}{{{tex_escape(group)}}}" if group else "")
            if group:
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines.append(" & ".join(tex_escape(column) for _, column in table.columns) + r" \\")
    lines.append(r"\midrule")
    for index, (heading, rows) in enumerate(table.sections):
        if index:
            lines.append(r"\midrule")
        if heading:
            lines.append(rf"\multicolumn{{{n}}}{{l}}{{\textit{{{tex_escape(heading)}}}}} \\")
        for row in rows:
            cells = [(rf"\textbf{{{tex_escape(c.text)}}}" if c.bold else tex_escape(c.text)) + TEX_MARKERS[c.marker] for c in row]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines += [r"\par\smallskip\footnotesize"] + [tex_escape(note) + r"\par" for note in table.notes]
    lines.append(r"\end{table*}")
    return "\n".join(lines) + "\n"


def latex_document(tables: list[Table]) -> str:
    """A standalone document holding the tables, to compile or to copy from."""
    body = "\n".join(to_latex(t) for t in tables)
    return ("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[margin=1.5cm,landscape]{geometry}\n"
            "\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n")
