"""The CLI: bad input gives one `error:` line and exit 2, never a traceback; --help everywhere."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_precomp

from benchmark.cli import main


def cli(*args, cwd=None):
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_missing_data_root_is_one_line_and_exit_2_in_a_real_process(tmp_path):
    done = cli("run", "--dataset", "f30k", "--data-root", str(tmp_path / "nowhere"), "--results-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: data root {tmp_path / 'nowhere'} does not exist; pass --data-root PATH or set ITR_BENCH_DATA"
    assert "Traceback" not in done.stdout + done.stderr


@pytest.fixture
def bad_root(tmp_path):
    folder = tmp_path / "f30k_precomp"
    for split in ("train", "dev", "test"):
        write_precomp(folder, split, 3)
    return tmp_path


def _append(path, data: bytes):
    with open(path, "ab") as handle:
        handle.write(data)


def _link_loop(path):
    path.unlink()
    path.symlink_to(path)


BREAKAGES = {  # how to break a valid f30k_precomp folder -> the message run must give, on one line
    "extra_caption": (lambda f: _append(f / "test_caps.txt", b"extra\n"), "test_caps.txt has 16 captions for 3 images"),
    "wrong_dims": (lambda f: np.save(f / "test_ims.npy", np.zeros((3, 8), np.float32)), "test_ims.npy has shape (3, 8)"),
    "nan": (lambda f: np.save(f / "test_ims.npy", np.full((3, 4, 6), np.nan, np.float32)), "test_ims.npy has NaN or inf values"),
    "box_count": (lambda f: [np.save(f / f"{s}_boxes.npy", np.zeros((3, 5, 4), np.float32)) for s in ("train", "dev", "test")],
                  "train_boxes.npy has shape (3, 5, 4); expected (n_images, n_regions, 4)"),
    "latin1_captions": (lambda f: (f / "dev_caps.txt").write_bytes((f / "dev_caps.txt").read_bytes().replace(b"a", "\u00e9".encode("latin1"), 1)),
                        "dev_caps.txt is not UTF-8 (byte 0xe9 at offset"),
    "string_features": (lambda f: np.save(f / "dev_ims.npy", np.full((3, 4, 6), "x")), "dev_ims.npy has dtype <U1; expected float32 features"),
    "symlink_loop": (lambda f: _link_loop(f / "train_ims.npy"), "train_ims.npy is a symlink that resolves to no file (broken, or a loop)"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_bad_data_gives_its_clear_error(capsys, bad_root, tmp_path, breakage):
    damage, message = BREAKAGES[breakage]
    damage(bad_root / "f30k_precomp")
    line = one_error_line(capsys, ["run", "--dataset", "f30k", "--data-root", str(bad_root), "--results-dir", str(tmp_path / "r")])
    assert message in line


def test_half_precision_features_are_read_with_one_note_and_empty_captions_are_named(capsys, bad_root):
    folder = bad_root / "f30k_precomp"
    np.save(folder / "dev_ims.npy", np.load(folder / "dev_ims.npy").astype(np.float16))
    lines = (folder / "test_caps.txt").read_text().splitlines()
    (folder / "test_caps.txt").write_text("\n".join(lines[:2] + [""] + lines[3:]) + "\n")
    assert main(["data", "check", "--dataset", "f30k", "--data-root", str(bad_root)]) == 0
    err = capsys.readouterr().err
    assert err.count("dev_ims.npy is float16; it is read as float32") == 1
    assert "test_caps.txt has 1 empty line(s), first at line 3" in err


@pytest.mark.parametrize("argv, message", [
    (["run", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["run", "--variant", "sx"], "unknown variant token 'sx'"),
    (["run", "train.lrr=1"], "unknown config key 'train.lrr'"),
    (["run", "--config", "missing.toml"], "config file missing.toml does not exist"),
    (["run", "--device", "cuda:0"] if not __import__("torch").cuda.is_available() else ["run", "--device", "tpu"], "device"),
    (["run", "--resume", "nowhere"], "not a run folder"),
    (["run", "--resume", "nowhere", "--seed", "1"], "--resume continues with the run's saved config"),
    (["run", "--resume", "nowhere", "--seed", "0"], "--resume continues with the run's saved config"),
    (["run", "model.num_heads=3"], "model.embed_dim (128) must be a multiple of model.num_heads (3)"),
    (["ablate", "--grid", "dsrln", "model.dropout=1.5"], "model.dropout must be in [0, 1); got 1.5"),
    (["sweep", "--n-trials", "1", "model.num_heads=0"], "model.num_heads must be in [1, inf); got 0"),
    (["eval", "--checkpoint", "missing.pt"], "checkpoint missing.pt does not exist"),
    (["data", "check", "--dataset", "coco", "--data-root", "/nowhere"], "data root /nowhere does not exist"),
    (["data", "generate", "data.synthetic.n_classes=99"], "n_classes must be between 2 and"),
    (["data", "generate", "train.lr=1"], "data generate takes data.synthetic.* overrides only"),
    (["run", "--seed", "-1"], "seed must be in [0, 4294967295]; got -1"),
    (["run", "--epochs", "0"], "train.epochs must be in [1, inf); got 0"),
    (["run", "train.batch_size=-5"], "train.batch_size must be in [2, inf); got -5"),
])
def test_user_mistakes_are_one_line_errors(capsys, tmp_path, argv, message):
    assert message in one_error_line(capsys, [*argv, "--results-dir", str(tmp_path)])


@pytest.mark.parametrize("command", [["run"], ["report"], ["ablate"], ["sweep"], ["data", "generate"]])
def test_a_results_folder_that_cannot_be_written_is_one_line(capsys, tmp_path, command):
    (tmp_path / "file").write_text("not a folder")
    for folder in (tmp_path / "file", tmp_path / "file" / "below"):
        line = one_error_line(capsys, [*command, "--results-dir", str(folder)])
        assert f"cannot write to the results folder {folder}" in line and "--results-dir" in line


def test_a_checkpoint_that_is_not_ours(capsys, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert "is not an itr-bench checkpoint" in one_error_line(capsys, ["eval", "--checkpoint", str(tmp_path / "junk.pt")])


@pytest.mark.parametrize("command", [[], ["run"], ["eval"], ["data"], ["data", "generate"], ["data", "check"], ["variants"], ["bench"], ["ui"]])
def test_help_everywhere(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out


def test_data_check_reports_shapes_and_what_is_missing(capsys, bad_root):
    assert main(["data", "check", "--dataset", "f30k", "--data-root", str(bad_root)]) == 0
    out = capsys.readouterr().out
    assert "train    3 images, 15 captions, regions (4, 6)" in out and "grid missing (train_grid.npy)" in out
    assert "all splits load" in out


def test_data_check_flags_a_broken_split_and_exits_1(capsys, bad_root):
    (bad_root / "f30k_precomp" / "dev_caps.txt").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", "--dataset", "f30k", "--data-root", str(bad_root)])
    assert exit_info.value.code == 1 and "dev      PROBLEM: missing" in capsys.readouterr().out


def test_variants_lists_every_axis_with_sources_and_parameter_counts(capsys, tmp_path):
    assert main(["variants", "--details", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "params]" in out and "parameter counts for synthetic dims" in out
    for axis in ("relation:", "source:", "alignment:", "text:"):
        assert axis in out
    assert "Vaswani" in out and "SCAN" in out


def test_bench_prints_each_formulation_against_the_scan_loop_and_writes_json(capsys, tmp_path):
    out_file = tmp_path / "bench.json"
    args = ["bench", "--images", "2", "--captions", "20", "--regions", "4", "--dim", "8", "--words", "3"]
    assert main([*args, "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    for name in ("SCAN-style shard loop", "local (Gram identity)", "global", "GEMM peak here", "ceiling of local scoring"):
        assert name in out
    figures = json.loads(out_file.read_text())
    assert [r["alignment"] for r in figures["results"]] == ["SCAN-style shard loop", "local (Gram identity)", "global"]
    local = figures["results"][1]
    assert local["vs_scan_loop"] > 0 and local["max_abs_diff"] < 1e-5 and figures["peak_bf16_gflops"] > 0
    line = one_error_line(capsys, [*args, "--json", str(out_file)])  # never overwrites
    assert "the file exists" in line and json.loads(out_file.read_text()) == figures


def test_bench_bounds_local_scoring_by_the_faster_precision_and_says_when_bf16_is_emulated():
    from benchmark.bench import Bench, BenchResult

    results = [BenchResult("SCAN-style shard loop", 1_000.0, 1e6), BenchResult("local (Gram identity)", 5_000.0, 1e6),
               BenchResult("global", 1e7, 2e3)]
    emulated = Bench(2, 10, 4, 8, 3, 2, "an AVX2 CPU", peak_fp32_gflops=100.0, peak_bf16_gflops=0.3, results=results)
    assert not emulated.fast_bf16 and emulated.ceiling() == ("fp32", 100_000.0)
    report = emulated.report()
    assert "bf16 0.3 GFLOP/s (no fast bf16 here" in report and "at the fp32 peak: 100,000 pairs/s (100.0x the SCAN loop)" in report
    amx = Bench(2, 10, 4, 8, 3, 2, "an AMX CPU", peak_fp32_gflops=200.0, peak_bf16_gflops=700.0, results=results)
    assert amx.fast_bf16 and "no fast bf16" not in amx.report() and "at the bf16 peak: 700,000 pairs/s" in amx.report()
    assert {k: amx.to_json()[k] for k in ("fast_bf16", "ceiling_precision", "ceiling_pairs_per_s")} == {
        "fast_bf16": True, "ceiling_precision": "bf16", "ceiling_pairs_per_s": 700_000.0}


def test_the_scan_shard_loop_scores_as_the_gram_identity_across_image_and_caption_shards():
    import torch

    from benchmark.bench import SHARD, scan_shard_loop
    from variants.alignment_local import local_similarity

    torch.manual_seed(0)
    regions, words = torch.randn(SHARD + 2, 5, 8, dtype=torch.float64), torch.randn(SHARD + 3, 6, 8, dtype=torch.float64)
    lengths = torch.randint(1, 7, (SHARD + 3,))
    mask = torch.arange(6)[None] < lengths[:, None]
    got = scan_shard_loop(regions, words, lengths, 9.0)
    torch.testing.assert_close(got, local_similarity(regions, words, mask, 9.0, "scan"), atol=1e-10, rtol=0)


def test_ui_on_a_port_in_use_is_one_line_and_exit_2(capsys, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(capsys, ["ui", "--port", str(port), "--results-dir", str(tmp_path)])
    assert f"cannot serve on 127.0.0.1:{port}" in line and "--port" in line


def test_data_check_finds_splits_that_do_not_fit_together_as_run_does(capsys, bad_root, tmp_path):
    write_precomp(bad_root / "f30k_precomp", "dev", 3, dim=7)  # loads on its own; another feature dim than train
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", "--dataset", "f30k", "--data-root", str(bad_root)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 1 and "PROBLEM" in out and "all splits load" not in out
    run_error = one_error_line(capsys, ["run", "--dataset", "f30k", "--data-root", str(bad_root), "--results-dir", str(tmp_path / "r")])
    assert run_error.removeprefix("error: ") in out


def test_an_unreadable_caption_file_is_one_line(capsys, bad_root, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file, so a file without read permission cannot be made here")
    (bad_root / "f30k_precomp" / "dev_caps.txt").chmod(0)
    line = one_error_line(capsys, ["run", "--dataset", "f30k", "--data-root", str(bad_root), "--results-dir", str(tmp_path / "r")])
    assert "cannot read" in line and "dev_caps.txt (Permission denied); fix its permissions" in line
