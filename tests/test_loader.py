"""The one loader on small files in exactly the community formats, and its one-line errors."""

import struct

import numpy as np
import pytest
from conftest import write_precomp

from benchmark.data.layout import DATASETS
from benchmark.data.loader import load_split, load_splits, resolve_root
from benchmark.errors import UserError


def write_gsmn_boxes(folder, split, n_images, n_regions, width=640.0, height=480.0):
    boxes = np.tile(np.array([64.0, 48.0, 320.0, 480.0], dtype=np.float32), (n_images, n_regions, 1))
    np.save(folder / f"{split}_ims_bbx.npy", boxes)
    sizes = np.array([{"image_h": height, "image_w": width} for _ in range(n_images)], dtype=object)
    np.save(folder / f"{split}_ims_size.npy", sizes, allow_pickle=True)


def test_gsmn_pixel_boxes_are_normalised_with_the_pickled_sizes(tmp_path):
    write_precomp(tmp_path, "test", 3)
    write_gsmn_boxes(tmp_path, "test", 3, 4)
    split = load_split(tmp_path, "test")
    np.testing.assert_allclose(split.boxes[0, 0], [0.1, 0.1, 0.5, 1.0])
    assert split.boxes.shape == (3, 4, 4)


def _py2_pickle_of_sizes(n_images: int) -> bytes:
    """Protocol-2 opcodes as Python 2 wrote them: str values as SHORT_BINSTRING, one non-ASCII."""
    def py2_str(raw: bytes) -> bytes:
        return b"U" + bytes([len(raw)]) + raw

    entry = b"}(" + py2_str(b"image_h") + b"G" + struct.pack(">d", 480.0) + py2_str(b"image_w") \
        + b"G" + struct.pack(">d", 640.0) + py2_str(b"name") + py2_str(b"caf\xe9") + b"u"
    return b"\x80\x02](" + entry * n_images + b"e."


def test_sizes_pickled_by_python2_load_with_latin1(tmp_path):
    write_precomp(tmp_path, "test", 2)
    write_gsmn_boxes(tmp_path, "test", 2, 4)
    with open(tmp_path / "test_ims_size.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (2,)})
        handle.write(_py2_pickle_of_sizes(2))
    with pytest.raises(UnicodeError):  # what a plain ASCII load of such a file does
        np.load(tmp_path / "test_ims_size.npy", allow_pickle=True)
    np.testing.assert_allclose(load_split(tmp_path, "test").boxes[0, 0], [0.1, 0.1, 0.5, 1.0])


def test_five_rows_per_image_are_detected_like_the_field(tmp_path):
    feats = write_precomp(tmp_path, "train", 4, rows_per_image=5)
    split = load_split(tmp_path, "train")
    assert split.rows_per_image == 5 and split.n_images == 4 and split.n_captions == 20
    np.testing.assert_array_equal(split.image_regions(np.array([2, 3])), feats[[2, 3]])


def test_a_dev_split_of_odd_size_and_ids_load(tmp_path):
    write_precomp(tmp_path, "dev", 7)
    (tmp_path / "dev_ids.txt").write_text("\n".join(str(100 + i) for i in range(7)))
    split = load_split(tmp_path, "dev")
    assert split.n_images == 7 and split.ids[-1] == "106"


def test_features_are_memory_mapped(tmp_path):
    write_precomp(tmp_path, "train", 3)
    assert isinstance(load_split(tmp_path, "train").regions, np.memmap)


def test_normalised_boxes_and_grid_load(tmp_path):
    write_precomp(tmp_path, "test", 3)
    np.save(tmp_path / "test_boxes.npy", np.full((3, 4, 4), 0.5, dtype=np.float32))
    np.save(tmp_path / "test_grid.npy", np.zeros((3, 49, 5), dtype=np.float32))
    split = load_split(tmp_path, "test")
    assert split.grid.shape == (3, 49, 5) and split.boxes.max() == 0.5


def test_missing_root_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="does not exist.*--data-root"):
        resolve_root(tmp_path / "nowhere")


def test_missing_dataset_folder_says_what_is_expected(tmp_path):
    from benchmark.data.loader import dataset_folder

    with pytest.raises(UserError, match="f30k_precomp.*does not exist"):
        dataset_folder(DATASETS["f30k"], tmp_path)


def test_captions_not_a_multiple_of_images(tmp_path):
    write_precomp(tmp_path, "test", 3)
    with open(tmp_path / "test_caps.txt", "a") as handle:
        handle.write("one caption too many\n")
    with pytest.raises(UserError, match=r"test_caps.txt has 16 captions for 3 images.*expected 5 per image"):
        load_split(tmp_path, "test")


def test_wrong_feature_dims(tmp_path):
    write_precomp(tmp_path, "test", 3)
    np.save(tmp_path / "test_ims.npy", np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(UserError, match=r"test_ims.npy has shape \(3, 8\); expected \(n_images, n_regions, dim\)"):
        load_split(tmp_path, "test")


def test_splits_with_different_dims_are_rejected(tmp_path):
    write_precomp(tmp_path, "train", 3, dim=6)
    write_precomp(tmp_path, "dev", 2, dim=6)
    write_precomp(tmp_path, "test", 2, dim=7)
    with pytest.raises(UserError, match="same \\(n_regions, dim\\)"):
        load_splits(DATASETS["f30k"], tmp_path)


def test_boxes_with_the_wrong_count(tmp_path):
    write_precomp(tmp_path, "test", 3)
    write_gsmn_boxes(tmp_path, "test", 3, 5)  # 5 boxes for 4 regions
    with pytest.raises(UserError, match=r"test_ims_bbx.npy has shape \(3, 5, 4\); expected"):
        load_split(tmp_path, "test")


def test_pixel_boxes_without_sizes(tmp_path):
    write_precomp(tmp_path, "test", 3)
    write_gsmn_boxes(tmp_path, "test", 3, 4)
    (tmp_path / "test_ims_size.npy").unlink()
    with pytest.raises(UserError, match="missing .*test_ims_size.npy"):
        load_split(tmp_path, "test")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_features(tmp_path, bad):
    feats = write_precomp(tmp_path, "test", 3)
    feats[2, 1, 0] = bad
    np.save(tmp_path / "test_ims.npy", feats)
    with pytest.raises(UserError, match="test_ims.npy has NaN or inf values \\(first at row 2\\)"):
        load_split(tmp_path, "test")


def test_a_grid_that_is_not_square(tmp_path):
    write_precomp(tmp_path, "test", 3)
    np.save(tmp_path / "test_grid.npy", np.zeros((3, 10, 5), dtype=np.float32))
    with pytest.raises(UserError, match="10 cells; expected a square grid"):
        load_split(tmp_path, "test")


def test_missing_captions_file(tmp_path):
    write_precomp(tmp_path, "test", 3)
    (tmp_path / "test_caps.txt").unlink()
    with pytest.raises(UserError, match="missing .*test_caps.txt"):
        load_split(tmp_path, "test")
