"""Memory at field scale: feature files read through a memory map stay out of the process's RSS, and the
field-scale writer produces what the loader reads, in the real Flickr30K shapes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from test_cli import one_error_line

from benchmark.cli import main
from benchmark.data.loader import load_split
from benchmark.field_scale import SHAPES, write_dataset

_READ_ALL = """
import os, sys
import numpy as np
from benchmark.data.loader import _check_finite, read_rows
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
array = np.load(sys.argv[1], mmap_mode="r")
before = resident_mb()
if sys.argv[2] == "scan":
    _check_finite(array, __import__("pathlib").Path(sys.argv[1]))
elif sys.argv[2] == "batches":
    for start in range(0, len(array), 16):
        read_rows(array, np.arange(start, min(start + 16, len(array))))
else:  # the control: plain reads through the map
    for start in range(0, len(array), 16):
        np.asarray(array[start:start + 16]).sum()
print(resident_mb() - before)
"""


@pytest.fixture(scope="module")
def features_192mb(tmp_path_factory):
    path = tmp_path_factory.mktemp("features") / "train_ims.npy"
    np.save(path, np.ones((512, 48, 2048), dtype=np.float32))  # 192 MiB, three NaN-scan chunks
    return path


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident set from /proc (Linux)")
@pytest.mark.parametrize("how", ["scan", "batches", "plain"])
def test_reading_a_whole_feature_file_leaves_it_out_of_rss(features_192mb, how):
    grown_mb = int(subprocess.run([sys.executable, "-c", _READ_ALL, str(features_192mb), how], capture_output=True,
                                  text=True, check=True).stdout)
    if how == "plain":  # the control: the test can tell, because a plain map read does count every page
        assert grown_mb >= 180
    else:
        assert grown_mb < 96  # at most one scan chunk (64 MiB) and its finiteness mask


def test_the_field_scale_set_loads_in_the_real_f30k_shapes_and_is_reused(tmp_path):
    root = write_dataset(tmp_path, 3, eval_images=2)
    folder = root / "f30k_precomp"
    train = load_split(folder, "train")
    assert train.regions.shape == (3, *SHAPES["ims"]) and train.grid.shape == (3, *SHAPES["grid"])
    assert train.n_captions == 15 and train.boxes.shape == (3, 36, 4) and (train.boxes[..., 2:] > train.boxes[..., :2]).all()
    assert load_split(folder, "test").n_images == 2
    stamp = (folder / "train_ims.npy").stat().st_mtime_ns
    write_dataset(tmp_path, 3, eval_images=2)
    assert (folder / "train_ims.npy").stat().st_mtime_ns == stamp and not (tmp_path / "f30k_precomp.partial").exists()


def test_field_scale_mistakes_are_one_line_before_anything_is_written(capsys, tmp_path):
    line = one_error_line(capsys, ["bench", "--field-scale", "2k", "--results-dir", str(tmp_path)])
    assert "--field-scale '2k' is not a comma-separated list" in line
    line = one_error_line(capsys, ["bench", "--field-scale", "100", "--results-dir", str(tmp_path)])
    assert "at least 307 images for --steps 10" in line  # 12 batches of 128 captions
    line = one_error_line(capsys, ["bench", "--field-scale", "400", "--json", str(tmp_path / "b.json"), "--results-dir", str(tmp_path)])
    assert "does not go with --field-scale" in line
    assert "go with --field-scale" in one_error_line(capsys, ["bench", "--steps", "3"])
    assert not (tmp_path / "field-scale").exists()
