"""Grid geometry: where the cells of a g x g feature grid lie, and which region boxes cover which cells."""

from __future__ import annotations

import math

import numpy as np
import torch


def cell_boxes(grid_size: int) -> np.ndarray:
    """(g*g, 4) normalised boxes of the grid cells, row-major from the top-left: the order of ``ImageBatch.grid``."""
    edges = np.linspace(0.0, 1.0, grid_size + 1)
    rows, cols = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    return np.stack([edges[cols], edges[rows], edges[cols + 1], edges[rows + 1]], axis=1)


def alignment_graph(boxes: torch.Tensor, grid_cells: int) -> torch.Tensor:
    """(B, R, 4) boxes -> (B, R, G) bool: True where region r's box intersects cell g (positive area)."""
    cells = torch.as_tensor(cell_boxes(round(math.sqrt(grid_cells))), dtype=boxes.dtype, device=boxes.device)
    low = torch.maximum(boxes[:, :, None, :2], cells[None, None, :, :2])
    high = torch.minimum(boxes[:, :, None, 2:], cells[None, None, :, 2:])
    return ((high - low) > 0).all(dim=-1)
