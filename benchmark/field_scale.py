"""``bench --field-scale``: training speed and peak memory at the real Flickr30K feature shapes.

Writes random features in the shapes of the field's precomp release (36 x 2048 BUTD regions, a
7 x 7 x 2048 grid, normalised boxes, five captions per image) at N training images, streamed to disk
so the writer's memory stays flat too. Then, for each N, a fresh process opens the data as ``run``
does (every array memory-mapped and scanned for NaN), builds a variant at the ``f30k`` preset, and
trains a few steps; it reports pairs/s and its peak RSS. Peak RSS should not grow with N.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.layout import CAPTIONS_PER_IMAGE
from benchmark.processes import peak_rss_mb

SHAPES = {"ims": (36, 2048), "grid": (49, 2048)}  # BUTD regions; a ResNet C5 map pooled to 7x7
EVAL_IMAGES = 1_000  # Flickr30K's dev and 1K test
VOCABULARY = 8_500  # about Flickr30K's vocabulary at SCAN's count threshold
_ROWS_PER_WRITE = 256


def _write_features(path: Path, n_images: int, shape: tuple[int, int], rng: np.random.Generator) -> None:
    """A float32 .npy of (n_images, *shape) non-negative features, written a chunk at a time."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": (n_images, *shape)})
        for start in range(0, n_images, _ROWS_PER_WRITE):
            rows = min(_ROWS_PER_WRITE, n_images - start)
            rng.random((rows, *shape), dtype=np.float32).tofile(handle)


def _write_split(folder: Path, split: str, n_images: int, rng: np.random.Generator) -> None:
    for name, shape in SHAPES.items():
        _write_features(folder / f"{split}_{name}.npy", n_images, shape, rng)
    corner = rng.random((n_images, SHAPES["ims"][0], 2), dtype=np.float32) * 0.7
    size = 0.05 + rng.random((n_images, SHAPES["ims"][0], 2), dtype=np.float32) * 0.25
    np.save(folder / f"{split}_boxes.npy", np.concatenate([corner, corner + size], axis=-1))
    lengths = rng.integers(8, 21, n_images * CAPTIONS_PER_IMAGE)  # Flickr30K captions: about 12 words
    words = rng.integers(0, VOCABULARY, int(lengths.sum()))
    with open(folder / f"{split}_caps.txt", "w") as handle:
        for caption in np.split(words, np.cumsum(lengths)[:-1]):
            handle.write(" ".join(f"w{w}" for w in caption) + "\n")


def disk_bytes(train_images: int, eval_images: int = EVAL_IMAGES) -> int:
    """What ``write_dataset`` writes, about (the features; captions and boxes are small)."""
    per_image = sum(rows * dim for rows, dim in SHAPES.values()) * 4
    return (train_images + 2 * eval_images) * per_image


def write_dataset(root: Path, train_images: int, seed: int = 0, eval_images: int = EVAL_IMAGES) -> Path:
    """``root/f30k_precomp`` with ``train_images`` train images and ``eval_images`` in dev and test (kept when
    already complete); returns ``root``."""
    folder = root / "f30k_precomp"
    if (folder / "complete").is_file():
        return root
    partial = root / "f30k_precomp.partial"  # renamed only when every file is written: never a half set that looks whole
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_images), ("dev", eval_images), ("test", eval_images)):
        _write_split(partial, split, n, rng)
    (partial / "complete").touch()
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return root


@dataclass
class Measurement:
    train_images: int
    disk_gb: float
    load_s: float
    pairs_per_s: float
    peak_rss_mb: float

    def epoch_minutes(self) -> float:
        return self.train_images * CAPTIONS_PER_IMAGE / self.pairs_per_s / 60


def _measure(root: str, results: str, variant: str, steps: int, threads: int) -> tuple[float, float, float]:
    """In a fresh process: (load seconds, training pairs/s after two warm-up steps, peak RSS in MB)."""
    import torch

    from benchmark import config as configuration
    from benchmark.data.batches import CaptionPairs, epoch_batches, training_groups
    from benchmark.runner import prepare
    from benchmark.training import Trainer

    torch.set_num_threads(threads)
    cfg = configuration.resolve("f30k", {"data": {"data_root": root}, "model": {"variant": variant}, "device": "cpu"})
    started = time.perf_counter()
    prepared = prepare(cfg, Path(results))
    load_s = time.perf_counter() - started
    data = prepared.training_data()
    trainer = Trainer(prepared.model, cfg.train, prepared.device)
    batches = epoch_batches(training_groups(data.train, False, []), cfg.train.batch_size, np.random.default_rng(0))
    pairs = CaptionPairs(data.train, data.train_tokens)
    trainer.train_epoch(pairs, batches[:2], 1, 1)  # warm-up
    _, _, rate = trainer.train_epoch(pairs, batches[2:steps + 2], 2, 2)
    return load_s, rate, peak_rss_mb()


def measure(root: Path, results: Path, train_images: int, variant: str, steps: int, threads: int) -> Measurement:
    folder = root / "f30k_precomp"
    disk_gb = sum(f.stat().st_size for f in folder.iterdir()) / 1e9
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        load_s, rate, rss = pool.submit(_measure, str(root), str(results), variant, steps, threads).result()
    return Measurement(train_images, disk_gb, load_s, rate, rss)


def report(rows: list[Measurement], variant: str, steps: int, threads: int) -> str:
    first = rows[0].peak_rss_mb
    lines = [f"{variant} at the f30k preset (batch 128, d=1024), {steps} training steps per size, CPU, {threads} torch threads",
             f"{'train images':>12} {'on disk':>9} {'load':>7} {'pairs/s':>8} {'peak RSS':>9} {'vs first':>8} {'epoch (proj.)':>13}"]
    for r in rows:
        lines.append(f"{r.train_images:12,} {r.disk_gb:7.1f}GB {r.load_s:6.1f}s {r.pairs_per_s:8.1f} {r.peak_rss_mb:7.0f}MB "
                     f"{(r.peak_rss_mb - first) / first:+8.1%} {r.epoch_minutes():10.0f} min")
    return "\n".join(lines)
