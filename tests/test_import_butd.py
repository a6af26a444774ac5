"""``data import-butd``: BUTD TSV parts and a Karpathy split file into the precomp layout, exactly and safely."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from real_inputs import f30k_inputs, make_row, write_karpathy, write_tsv
from test_cli import one_error_line

from benchmark.cli import main
from benchmark.data.butd import parse_row
from benchmark.data.karpathy import read_splits
from benchmark.data.loader import load_split
from benchmark.data.staging import Staging
from benchmark.errors import UserError


def _import(inputs, root, *extra):
    return main(["data", "import-butd", "--tsv", *map(str, inputs.tsv), "--split-file", str(inputs.split_file),
                 "--dataset", "f30k", "--data-root", str(root), *extra])


def _problem_lines(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    problems = [line for line in err if line.startswith("problem: ")]
    assert err[-1].startswith("error: nothing was published"), err
    return problems


@pytest.fixture
def inputs(tmp_path):
    return f30k_inputs(tmp_path)


def test_imported_features_boxes_captions_and_ids_equal_the_tsv_rows_exactly(inputs, tmp_path, capsys):
    assert _import(inputs, tmp_path / "root") == 0
    out = capsys.readouterr().out
    assert "train    12 images, 60 captions" in out and "1 TSV rows of images in none of these splits" in out
    folder = tmp_path / "root" / "f30k_precomp"
    for split, ids in inputs.splits.items():
        data = load_split(folder, split)
        assert data.ids == ids  # the split file's order, not the TSV's
        assert data.captions == [c for image_id in ids for c in inputs.captions[image_id]]
        for k, image_id in enumerate(ids):
            row = parse_row(inputs.rows[image_id].encode())  # decoded independently of the import
            np.testing.assert_array_equal(data.regions[k], inputs.rows[image_id].features)
            np.testing.assert_array_equal(data.regions[k], row.features)
            size = np.array([row.width, row.height] * 2, np.float32)
            np.testing.assert_array_equal(data.boxes[k], np.clip(inputs.rows[image_id].boxes / size, 0, 1))
    assert not list(folder.glob(".*staging*")), "the staging folder is removed once published"
    assert main(["data", "check", "--dataset", "f30k", "--data-root", str(tmp_path / "root"),
                 "--results-dir", str(tmp_path / "results")]) == 0


def test_coco_train_takes_restval_unless_told_not_and_an_image_keeps_its_first_5_captions(tmp_path):
    rng = np.random.default_rng(1)
    images = [{"id": str(100 + k), "split": split, "coco": True, "captions": [f"caption {k} {j}" for j in range(6 if k == 0 else 5)]}
              for k, split in enumerate(["train", "restval", "val", "test", "test", "train"])]
    split_file = write_karpathy(tmp_path / "dataset_coco.json", images)
    splits = read_splits(split_file, "coco")
    assert {name: [i.image_id for i in split] for name, split in splits.items()} == {
        "train": ["100", "101", "105"], "dev": ["102"], "testall": ["103", "104"]}
    assert splits["train"][0].captions == tuple(f"caption 0 {j}" for j in range(5))
    assert splits["train"][0].path == "val2014/COCO_val2014_000000000100.jpg"
    assert [i.image_id for i in read_splits(split_file, "coco", restval=False)["train"]] == ["100", "105"]
    tsv = write_tsv(tmp_path / "tsv", [make_row(str(100 + k), rng) for k in range(6)], parts=2)
    assert main(["data", "import-butd", "--tsv", str(tmp_path / "tsv"), "--split-file", str(split_file), "--dataset", "coco",
                 "--data-root", str(tmp_path / "root"), "--no-restval"]) == 0
    folder = tmp_path / "root" / "coco_precomp"
    assert (folder / "train_ids.txt").read_text().split() == ["100", "105"]
    assert (folder / "testall_ids.txt").read_text().split() == ["103", "104"]
    assert len(tsv) == 2


def _rewrite(inputs, change):
    """Apply ``change`` to the rows (a dict id -> TsvRow, plus a list of extra rows) and rewrite the TSV parts."""
    rows = dict(inputs.rows)
    extra = change(rows) or []
    write_tsv(inputs.tsv[0].parent, list(rows.values()) + extra, parts=len(inputs.tsv))


def _adaptive(rows, image_id):
    row = rows[image_id]
    rows[image_id] = type(row)(row.image_id, row.width, row.height, row.boxes[:20], row.features[:20])


def _oversized(rows, image_id):
    row = rows[image_id]
    rows[image_id] = type(row)(row.image_id, row.width / 4, row.height / 4, row.boxes, row.features)


def _differing_duplicate(rows, image_id):
    row = rows[image_id]
    return [type(row)(row.image_id, row.width, row.height, row.boxes, row.features + 1)]


@pytest.mark.parametrize("change, expected", [
    (lambda rows, i: rows.pop(i) and None, "problem: images of the split file in no TSV part: 1 (e.g. dev image {i}); add the TSV part"),
    (_adaptive, "problem: images with another box count: 1 (e.g. image {i} ("),
    (_oversized, "problem: boxes outside the stated image size: 1 (e.g. image {i} ("),
    (_differing_duplicate, "problem: image ids that appear twice with different features: 1 (e.g. image {i} at trainval.tsv."),
], ids=["missing", "adaptive-boxes", "size", "duplicate"])
def test_each_bad_input_is_one_problem_line_and_nothing_is_published(inputs, tmp_path, capsys, change, expected):
    image_id = inputs.splits["dev"][1]
    _rewrite(inputs, lambda rows: change(rows, image_id))
    problems = _problem_lines(capsys, _import(inputs, tmp_path / "root"))
    assert len(problems) == 1 and problems[0].startswith(expected.format(i=image_id)), problems
    assert not list((tmp_path / "root" / "f30k_precomp").glob("*.npy")), "nothing published"


def test_a_missing_image_can_be_dropped_and_an_identical_duplicate_is_a_note(inputs, tmp_path, capsys):
    gone, twice = inputs.splits["train"][3], inputs.splits["test"][0]
    _rewrite(inputs, lambda rows: [rows.pop(gone), rows[twice]][1:])
    assert _import(inputs, tmp_path / "root", "--drop-missing") == 0
    out = capsys.readouterr().out
    assert "1 images in no TSV part were left out (--drop-missing)" in out and "1 repeated rows with identical features" in out
    data = load_split(tmp_path / "root" / "f30k_precomp", "train")
    expected = [i for i in inputs.splits["train"] if i != gone]
    assert data.ids == expected and data.n_captions == 5 * len(expected)
    for k, image_id in enumerate(expected):
        np.testing.assert_array_equal(data.regions[k], inputs.rows[image_id].features)


def test_an_image_whose_file_has_another_shape_than_the_tsv_states_is_a_problem(inputs, tmp_path, capsys):
    from PIL import Image

    image_id = inputs.splits["test"][2]
    row = inputs.rows[image_id]
    Image.new("RGB", (int(row.width) * 2, int(row.height))).save(inputs.images / f"{image_id}.jpg")
    problems = _problem_lines(capsys, _import(inputs, tmp_path / "root", "--images", str(inputs.images)))
    assert len(problems) == 1 and problems[0].startswith(f"problem: image sizes that differ from the TSV's: 1 (e.g. image {image_id} (")
    assert f"{image_id}.jpg is {int(row.width) * 2}x{int(row.height)}" in problems[0]


def test_unreadable_rows_and_unknown_inputs_are_one_line(inputs, tmp_path, capsys):
    with open(inputs.tsv[1], "ab") as handle:
        handle.write(b"123\t10\t10\t1\tnot-base64!\tAAAA\n")
    problems = _problem_lines(capsys, _import(inputs, tmp_path / "root"))
    assert len(problems) == 1 and problems[0].startswith("problem: unreadable rows: 1 (e.g. trainval.tsv.1 line ")
    assert "its boxes are not valid base64" in problems[0]
    assert "does not exist" in one_error_line(capsys, ["data", "import-butd", "--tsv", str(tmp_path / "nope.tsv"), "--split-file",
                                                        str(inputs.split_file), "--dataset", "f30k", "--data-root", str(tmp_path)])
    (tmp_path / "bad.json").write_text("{}")
    assert "is not a Karpathy split file" in one_error_line(capsys, ["data", "import-butd", "--tsv", str(inputs.tsv[0]), "--split-file",
                                                                     str(tmp_path / "bad.json"), "--dataset", "f30k", "--data-root", str(tmp_path)])
    with pytest.raises(UserError, match="has 4 captions; the field's layout needs 5"):
        read_splits(write_karpathy(tmp_path / "few.json", [{"id": "7", "split": "test", "captions": ["x"] * 4}]), "f30k")


def test_existing_outputs_are_never_overwritten(inputs, tmp_path, capsys):
    folder = tmp_path / "root" / "f30k_precomp"
    folder.mkdir(parents=True)
    (folder / "dev_caps.txt").write_text("mine\n")
    assert "dev_caps.txt already exists; nothing was overwritten" in one_error_line(capsys, _import_argv(inputs, tmp_path / "root"))
    assert (folder / "dev_caps.txt").read_text() == "mine\n"


def _import_argv(inputs, root):
    return ["data", "import-butd", "--tsv", *map(str, inputs.tsv), "--split-file", str(inputs.split_file),
            "--dataset", "f30k", "--data-root", str(root)]


KILL_AFTER_ROWS = """
import os, signal, sys
from benchmark.data import butd
butd.CHECKPOINT_SECONDS = 0.0  # a checkpoint after every row
add, seen = butd._Importer.add, []
def add_then_die(self, row, source):
    add(self, row, source)
    seen.append(row)
    if len(seen) == {rows}:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind runs
butd._Importer.add = add_then_die
from benchmark.cli import main
main(sys.argv[1:])
"""


def test_an_import_killed_midway_publishes_nothing_and_a_rerun_resumes_to_the_exact_result(inputs, tmp_path, capsys):
    root = tmp_path / "root"
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_ROWS.format(rows=9), *_import_argv(inputs, root)],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    folder = root / "f30k_precomp"
    assert not [p.name for p in folder.iterdir() if not p.name.startswith(".")], "a killed import leaves nothing that looks complete"
    assert main(_import_argv(inputs, root)) == 0
    resumed = re.search(r"resuming the import in .* \((\d+) images already in\)", capsys.readouterr().err)
    assert resumed and int(resumed.group(1)) >= 7, "the rerun starts from the 8 rows checkpointed before the kill (one may be the stray)"
    for split, ids in inputs.splits.items():
        data = load_split(folder, split)
        assert data.ids == ids
        for k, image_id in enumerate(ids):
            np.testing.assert_array_equal(data.regions[k], inputs.rows[image_id].features)


def test_a_staging_folder_of_other_inputs_is_refused_until_restart(inputs, tmp_path, capsys):
    _rewrite(inputs, lambda rows: rows.pop(inputs.splits["dev"][0]) and None)
    _problem_lines(capsys, _import(inputs, tmp_path / "root"))  # leaves its staging folder
    line = one_error_line(capsys, _import_argv(inputs, tmp_path / "root") + ["--regions", "20"])
    assert "holds an unfinished import-butd from other inputs (regions differ); rerun with the same inputs" in line
    _problem_lines(capsys, _import(inputs, tmp_path / "root", "--regions", "20", "--restart"))


def test_a_part_that_is_dropped_on_a_rerun_makes_every_part_be_read_again(inputs, tmp_path, capsys):
    """Part a and part b both hold image X (identical rows; b's copy is skipped as a repeat), and image Y is in no
    part, so the first import stops. The rerun gives b and a new part c with Y, without a: X must come from b."""
    x, y = inputs.splits["train"][0], inputs.splits["dev"][0]
    rows = {image_id: row for image_id, row in inputs.rows.items() if image_id != y}
    folder = tmp_path / "tsv2"
    folder.mkdir()
    (folder / "a.tsv").write_bytes(inputs.rows[x].encode())
    (folder / "b.tsv").write_bytes(b"".join(row.encode() for row in rows.values()))
    (folder / "c.tsv").write_bytes(inputs.rows[y].encode())
    argv = ["data", "import-butd", "--split-file", str(inputs.split_file), "--dataset", "f30k", "--data-root", str(tmp_path / "root"), "--tsv"]
    assert [line.split(":")[1] for line in _problem_lines(capsys, main(argv + [str(folder / "a.tsv"), str(folder / "b.tsv")]))] == [
        " images of the split file in no TSV part"]
    assert main(argv + [str(folder / "b.tsv"), str(folder / "c.tsv")]) == 0
    captured = capsys.readouterr()
    assert "a.tsv changed or is no longer given since the interrupted import; reading every part again" in captured.err
    assert "repeated rows" not in captured.out, "the first run's tally is not carried over"
    folder_out = tmp_path / "root" / "f30k_precomp"
    for split, ids in inputs.splits.items():
        data = load_split(folder_out, split)
        for k, image_id in enumerate(ids):
            np.testing.assert_array_equal(data.regions[k], inputs.rows[image_id].features)


KILL_IN_PUBLICATION = """
import os, signal, sys
from benchmark.data import staging
replace, moved = os.replace, []
def replace_then_die(source, target):
    replace(source, target)
    if os.path.basename(os.path.dirname(target)).endswith("_precomp"):  # a move into the output, not within staging
        moved.append(target)
        if len(moved) == {moves}:
            os.kill(os.getpid(), signal.SIGKILL)
staging.os.replace = replace_then_die
from benchmark.cli import main
main(sys.argv[1:])
"""


def test_an_import_killed_while_publishing_is_finished_by_the_next_run(inputs, tmp_path, capsys):
    """Killed after train is published and dev half-way (its captions and ids moved, not its arrays)."""
    argv = _import_argv(inputs, tmp_path / "root") + ["--drop-missing"]
    killed = subprocess.run([sys.executable, "-c", KILL_IN_PUBLICATION.format(moves=6), *argv], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    folder = tmp_path / "root" / "f30k_precomp"
    assert (folder / "dev_caps.txt").is_file() and not (folder / "dev_ims.npy").exists()
    assert main(argv) == 0
    assert "finished publishing the import" in capsys.readouterr().out
    for split, ids in inputs.splits.items():
        data = load_split(folder, split)
        assert data.ids == ids
        for k, image_id in enumerate(ids):
            np.testing.assert_array_equal(data.regions[k], inputs.rows[image_id].features)
    assert not list(folder.glob(".*staging*"))


def test_a_split_with_none_of_its_images_in_the_tsv_is_refused_even_with_drop_missing(inputs, tmp_path, capsys):
    _rewrite(inputs, lambda rows: [rows.pop(i) for i in inputs.splits["test"]] and None)
    problems = _problem_lines(capsys, _import(inputs, tmp_path / "root", "--drop-missing"))
    assert len(problems) == 1 and problems[0].startswith("problem: splits with none of their images in the TSV: 1 (e.g. test: 4 images")
    assert "check that the TSV's image_id column holds the split file's ids" in problems[0]


def test_staged_arrays_count_their_allocated_blocks_not_their_sparse_size(tmp_path):
    table = Staging(tmp_path, "job", {}).table("train", 2000, {"ims.npy": ((36, 2048), "float32")})
    table.write(0, 0, **{"ims.npy": np.ones((36, 2048), np.float32)})
    table.save()
    assert table.path("ims.npy").stat().st_size > 500e6
    assert table.bytes_on_disk() < 2e6


def test_a_second_import_into_the_same_folder_at_once_is_refused(inputs, tmp_path, capsys):
    folder = tmp_path / "root" / "f30k_precomp"
    folder.mkdir(parents=True)
    holder = Staging(folder, "import-butd", {})  # holds the staging folder's lock, as a running import does
    assert "another import-butd is writing into" in one_error_line(capsys, _import_argv(inputs, tmp_path / "root"))
    holder.discard()
    assert main(_import_argv(inputs, tmp_path / "root")) == 0


def test_a_rerun_with_drop_missing_as_the_problem_line_suggests_resumes(inputs, tmp_path, capsys):
    gone = inputs.splits["train"][2]
    _rewrite(inputs, lambda rows: rows.pop(gone) and None)
    assert "pass --drop-missing to leave them out" in _problem_lines(capsys, _import(inputs, tmp_path / "root"))[0]
    assert _import(inputs, tmp_path / "root", "--drop-missing") == 0
    assert "resuming the import" in capsys.readouterr().err
    assert load_split(tmp_path / "root" / "f30k_precomp", "train").ids == [i for i in inputs.splits["train"] if i != gone]
