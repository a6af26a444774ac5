"""Data-parallel training under torchrun (gloo on CPU): the same steps as one process, one tracked run, and a
failing rank that ends the run FAILED instead of hanging."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from conftest import tiny_config

from benchmark.data.synthetic import ensure_dataset
from benchmark.distributed import STOPPED

TESTS = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _env(**extra) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1", **extra}


@pytest.mark.parametrize("variant", ["sa", "gisa+dif+hier", "none+grid"])  # none+grid never uses its region projection
def test_two_ranks_take_the_same_steps_as_one_process(tmp_path, variant):
    """The global batch is cut into shards, the embeddings gathered with their gradients and the gradients averaged:
    loss and updated weights equal one process's on the same global batches (up to float summation order)."""
    ensure_dataset(tiny_config().data.synthetic, tmp_path)  # generated once, before two ranks could race for it
    single, double = tmp_path / "one.pt", tmp_path / "two.pt"
    for command, out in ([sys.executable], single), (TORCHRUN, double):
        done = subprocess.run([*command, str(TESTS / "ddp_step.py"), str(out), str(tmp_path), variant], env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = torch.load(single), torch.load(double)
    assert one["batches"] == [15, 5]
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    scale = max(grad.abs().max() for grad in one["grads"].values() if grad is not None)
    for name, grad in one["grads"].items():
        if grad is None:  # a parameter no step uses (none+grid's region projection): untouched on both
            assert two["grads"][name] is None and torch.equal(two["model"][name], one["initial"][name]), name
            continue
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-5 * scale, msg=name)
        # Adam scales every gradient entry to a step of about lr, so a tiny gradient's rounding error becomes a large
        # relative error of its step, and pure rounding noise a full step of random sign (an attention key's bias has
        # a zero gradient by construction: softmax ignores a shift shared by all keys). Entries with a gradient below
        # 1e-3 of the largest are compared as gradients above; every other weight must match after the two steps.
        signal = grad.abs() > 1e-3 * scale
        torch.testing.assert_close(two["model"][name][signal], one["model"][name][signal], rtol=1e-4, atol=1e-5, msg=name)
    assert any(not torch.equal(weights, one["initial"][name]) for name, weights in one["model"].items()), "the steps moved the weights"


def _store_runs(results: Path, experiment: str):
    mlflow.set_tracking_uri(f"sqlite:///{results / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


TINY_FLAGS = ["--variant", "sa", "--epochs", "2", "--device", "cpu", "experiment=ddp", "data.synthetic.train_groups=8",
              "data.synthetic.dev_groups=3", "data.synthetic.test_groups=4", "data.synthetic.crowded_groups=4",
              "data.synthetic.n_regions=10", "data.synthetic.region_dim=16", "data.synthetic.grid_size=3", "data.synthetic.grid_dim=8",
              "model.embed_dim=16", "model.word_dim=8", "model.num_heads=2", "train.batch_size=16", "train.lr_milestones=[1]"]


@pytest.mark.slow
def test_a_two_process_torchrun_run_finishes_and_logs_once(tmp_path):
    done = subprocess.run([*TORCHRUN, "-m", "benchmark", "run", "--results-dir", str(tmp_path), *TINY_FLAGS],
                          env=_env(MLFLOW_TRACKING_URI=""), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("\ntest (") == 1 and "x 2 ranks (torchrun)" in done.stdout
    runs = _store_runs(tmp_path, "ddp")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["world_size"] == "2" and "test_rsum" in runs[0].data.metrics
    assert len(list((tmp_path / "runs").iterdir())) == 1


CRASH_ON_RANK_1 = """
import os, sys
from benchmark import training
if os.environ["RANK"] == "1":
    def crash(*args, **kwargs):
        raise RuntimeError("a planted failure on rank 1")
    training.Trainer.train_epoch = crash
from benchmark.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_rank_that_fails_ends_the_run_failed_not_hung(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(CRASH_ON_RANK_1)
    done = subprocess.run([*TORCHRUN, str(script), "run", "--results-dir", str(tmp_path), *TINY_FLAGS],
                          env=_env(MLFLOW_TRACKING_URI=""), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "a planted failure on rank 1" in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")] == [f"error: {STOPPED}"], done.stderr[-3000:]
    runs = _store_runs(tmp_path, "ddp")
    assert [run.info.status for run in runs] == ["FAILED"]
    shutil.rmtree(tmp_path / "runs")
