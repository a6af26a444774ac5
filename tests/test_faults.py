"""Fault drills: real full disks, real damaged files. Nothing written before a fault is lost."""

import os
import subprocess

import pytest
import torch

from benchmark import training
from benchmark.checkpoint import load_checkpoint, save_checkpoint
from benchmark.errors import UserError


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs (needs root and mount rights; skipped, saying why, without them)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        pytest.skip("a real full disk needs a tmpfs mount: run as root with mount rights")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_checkpoint_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(small_disk):
    small = {"model": {"w": torch.zeros(10)}, "config": {}, "vocab": [], "dims": {}, "epoch": 1}
    save_checkpoint(small, small_disk / "best.pt")
    with pytest.raises(UserError, match=r"cannot write checkpoint .*best.pt \(No space left on device\); free space"):
        save_checkpoint(small | {"model": {"w": torch.zeros(1_000_000)}, "epoch": 2}, small_disk / "best.pt")
    assert load_checkpoint(small_disk / "best.pt")["epoch"] == 1
    assert sorted(p.name for p in small_disk.iterdir()) == ["best.pt"]


def test_best_is_written_before_last(results, tiny, monkeypatch, tmp_path):
    """So the last.pt on disk never names a best epoch whose best.pt is missing."""
    from benchmark import runner

    written = []
    real_save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint", lambda payload, path: (written.append(path.name), real_save(payload, path)))
    runner.run(tiny(train={"epochs": 1}), results)
    assert written == ["best.pt", "last.pt"]
