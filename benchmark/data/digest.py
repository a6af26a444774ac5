"""A dataset's digest: cheap on large memory-mapped files, and different whenever the data a run reads differs.

Each split contributes its shapes and dtypes, a strided sample of feature rows (``SAMPLE_ROWS`` rows spread
evenly, first and last included), every box, every twin index and every caption. A file of tens of GB is
thus digested in well under a second, and any change of captions, geometry, sizes or sampled features shows.
"""

from __future__ import annotations

import hashlib

import numpy as np

from benchmark.data.loader import Split, read_rows

SAMPLE_ROWS = 64


def _sampled(array: np.ndarray) -> np.ndarray:
    rows = np.unique(np.linspace(0, len(array) - 1, min(SAMPLE_ROWS, len(array))).round().astype(np.int64))
    return read_rows(array, rows)


def dataset_digest(splits: dict[str, Split]) -> str:
    """sha256 (hex, first 16 characters) over every split, in name order."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        split = splits[name]
        digest.update(f"{name}:{split.regions.shape}:{split.regions.dtype}:{split.rows_per_image}".encode())
        digest.update(_sampled(split.regions).tobytes())
        for extra in (split.boxes, split.twins):
            digest.update(b"-" if extra is None else np.ascontiguousarray(extra).tobytes())
        if split.grid is not None:
            digest.update(f"{split.grid.shape}:{split.grid.dtype}".encode())
            digest.update(_sampled(split.grid).tobytes())
        digest.update("\n".join(split.captions).encode())
    return digest.hexdigest()[:16]
