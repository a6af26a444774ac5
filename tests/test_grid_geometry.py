"""Grid geometry against a naive reference: the cells' boxes and which region boxes cover which cells."""

import numpy as np
import pytest
import torch

from variants import alignment_graph, cell_boxes


def naive_cell(grid_size: int, index: int) -> tuple[float, float, float, float]:
    row, col = divmod(index, grid_size)  # row-major from the top-left
    return col / grid_size, row / grid_size, (col + 1) / grid_size, (row + 1) / grid_size


def naive_links(box, grid_size: int) -> list[int]:
    """The cells whose overlap with the box has positive width and height."""
    x1, y1, x2, y2 = box
    out = []
    for index in range(grid_size * grid_size):
        cx1, cy1, cx2, cy2 = naive_cell(grid_size, index)
        if min(x2, cx2) - max(x1, cx1) > 0 and min(y2, cy2) - max(y1, cy1) > 0:
            out.append(index)
    return out


@pytest.mark.parametrize("grid_size", [1, 3, 7])
def test_cell_boxes_tile_the_image_row_major_from_the_top_left(grid_size):
    cells = cell_boxes(grid_size)
    assert cells.shape == (grid_size * grid_size, 4)
    np.testing.assert_allclose(cells, [naive_cell(grid_size, i) for i in range(grid_size * grid_size)])


def test_grid_cells_are_row_major_from_the_top_left_on_an_asymmetric_box():
    """A box in the left column, middle row links to cell r*g + c = 3, and one in the top row, right column
    to cell 2; a column-major layout would give 1 and 6."""
    np.testing.assert_allclose(cell_boxes(3)[3], [0.0, 1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(cell_boxes(3)[2], [2 / 3, 0.0, 1.0, 1 / 3])
    boxes = torch.tensor([[[0.02, 0.40, 0.30, 0.60], [0.70, 0.02, 0.95, 0.30]]])
    links = alignment_graph(boxes, 9)[0]
    assert links[0].nonzero().flatten().tolist() == [3] and links[1].nonzero().flatten().tolist() == [2]


@pytest.mark.parametrize("grid_size", [3, 7])
def test_links_match_the_naive_reference_on_random_boxes(grid_size):
    rng = np.random.default_rng(grid_size)
    corners = rng.random((2, 40, 2))
    boxes = np.concatenate([corners.min(0), corners.max(0)], axis=1)  # (40, 4): x1 <= x2, y1 <= y2
    links = alignment_graph(torch.from_numpy(boxes)[None], grid_size * grid_size)[0]
    assert links.shape == (40, grid_size * grid_size)
    for box, row in zip(boxes, links, strict=True):
        assert row.nonzero().flatten().tolist() == naive_links(box, grid_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_touching_a_cell_is_not_covering_it(dtype):
    third = 1 / 3  # in the boxes' own precision, as the cells' edges are
    boxes = torch.tensor([[[0.0, 0.0, third, third],  # exactly cell 0: its edges touch cells 1, 3 and 4
                           [0.5, 0.5, 0.5, 0.5],  # empty: covers nothing
                           [third, 0.0, 1.0, 0.1],  # a thin strip along the top of cells 1 and 2
                           [0.0, 0.0, 1.0, 1.0]]], dtype=dtype)  # the whole image
    links = alignment_graph(boxes, 9)[0]
    assert [row.nonzero().flatten().tolist() for row in links] == [[0], [], [1, 2], list(range(9))]


def test_the_cells_follow_the_boxes_device():
    """Built where the boxes are (a CUDA batch gets CUDA cells); the meta device stands in for a GPU here."""
    assert alignment_graph(torch.rand(2, 3, 4, device="meta"), 9).device.type == "meta"
