"""Published results, bundled as ``published.csv`` with a source and a note on every row.

They are shown only beside real benchmarks (Flickr30K, COCO), never beside synthetic results,
and always in their own "reported" section.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.metrics import SUMMARY_KEYS
from benchmark.report.render import Cell

PUBLISHED = Path(__file__).with_name("published.csv")


def published() -> pd.DataFrame:
    return pd.read_csv(PUBLISHED, keep_default_na=False)


def reference_rows(benchmark_keys: list[str], n_metrics: int) -> tuple[list[list[Cell]], list[str]]:
    """Rows (method, "reported", then the metrics of each benchmark or "–") and their numbered notes."""
    table = published()
    table = table[table["benchmark"].isin(benchmark_keys)]
    rows, notes = [], []
    for (method, encoder), entries in table.groupby(["method", "text_encoder"], sort=False):
        first = entries.iloc[0]
        notes.append(f"[{len(notes) + 1}] {method} ({encoder}): {first['note']}. Source: {first['source']}.")
        row = [Cell(f"{method} ({encoder}) [{len(notes)}]"), Cell("reported")]
        for key in benchmark_keys:
            match = entries[entries["benchmark"] == key]
            row += [Cell(f"{match.iloc[0][m]:.1f}") if len(match) else Cell("–") for m in SUMMARY_KEYS[:n_metrics]]
        rows.append(row)
    return rows, notes
