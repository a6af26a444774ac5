"""``bench --real-data N``: how fast ``data import-butd`` and ``data extract-grid`` run here, and how long
Flickr30K and COCO would take.

The inputs are generated in the real shapes (BUTD rows of 36 x 2048 float32 in three TSV parts, 500 x 375 JPEGs as
Flickr30K's typical image, a Karpathy split file, ResNet-152 with random weights saved as a local file) under
``<results>/real-data-bench/n<N>/`` and reused. Each command then runs in a fresh process, as a user runs it,
timed from the command's start to its end, with its peak RSS.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.errors import UserError

REGIONS, FEATURE_DIM, PARTS = 36, 2048, 3
IMAGE_SIZE = (500, 375)  # width, height: Flickr30K's most common size
DATASET_IMAGES = {"Flickr30K": 31_783, "COCO": 123_287}
_MEASURE = """
import json, sys, time
from benchmark.cli import main
from benchmark.processes import peak_rss_mb
started = time.monotonic()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.monotonic() - started, "peak_rss_mb": peak_rss_mb()}))
"""


def encode_row(image_id: str, width: int, height: int, boxes: np.ndarray, features: np.ndarray) -> bytes:
    """One BUTD TSV line, as the bottom-up-attention ``generate_tsv.py`` writes it."""
    fields = [image_id, str(width), str(height), str(len(boxes)), base64.b64encode(boxes.astype(np.float32).tobytes()).decode(),
              base64.b64encode(features.astype(np.float32).tobytes()).decode()]
    return ("\t".join(fields) + "\n").encode()


def disk_bytes(n: int) -> int:
    """About what ``write_inputs`` writes: base64 rows, JPEGs of noise (~100 KB), and the weights."""
    return n * (REGIONS * FEATURE_DIM * 4 * 4 // 3 + 100_000) + 250_000_000


def write_inputs(folder: Path, n: int, seed: int = 0) -> Path:
    """The generated inputs in ``folder`` (kept when already complete); n >= 3 images: 1 dev, 1 test, the rest train."""
    from PIL import Image

    if (folder / "complete").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "tsv").mkdir(parents=True)
    (folder / "images").mkdir()
    rng = np.random.default_rng(seed)
    ids = [str(1_000_000 + k) for k in range(n)]
    splits = ["val", "test"] + ["train"] * (n - 2)
    entries = [{"split": split, "filename": f"{i}.jpg", "sentences": [{"raw": f"a photo number {i} caption {j}"} for j in range(5)]}
               for i, split in zip(ids, splits)]
    (folder / "dataset_flickr30k.json").write_text(json.dumps({"images": entries}), encoding="utf-8")
    width, height = IMAGE_SIZE
    parts = [open(folder / "tsv" / f"trainval.tsv.{k}", "wb") for k in range(PARTS)]
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for k, image_id in enumerate(ids):
        corner = rng.uniform(0, 0.5, (REGIONS, 2)) * IMAGE_SIZE
        boxes = np.concatenate([corner, corner + rng.uniform(0.1, 0.5, (REGIONS, 2)) * IMAGE_SIZE], axis=1)
        features = np.maximum(rng.standard_normal((REGIONS, FEATURE_DIM), dtype=np.float32), 0)  # post-ReLU, like pool5
        parts[k % PARTS].write(encode_row(image_id, width, height, boxes, features))
        Image.fromarray(np.roll(base, k * 7, axis=1)).save(folder / "images" / f"{image_id}.jpg", quality=90)
    for part in parts:
        part.close()
    _save_random_resnet152(folder / "resnet152.pth", seed)
    (folder / "complete").write_text("")
    return folder


def _save_random_resnet152(path: Path, seed: int) -> None:
    import torch

    from variants import import_torchvision

    torch.manual_seed(seed)
    torch.save(import_torchvision().models.resnet152().state_dict(), path)


@dataclass
class Step:
    name: str
    items: int
    unit: str
    seconds: float
    peak_rss_mb: float

    def row(self) -> str:
        rate = self.items / self.seconds
        projections = "".join(f"{n / rate / 60:>15.0f} min" for n in DATASET_IMAGES.values())
        return f"{self.name:<13}{self.items:>7,}{self.seconds:>9.1f} s{rate:>10.1f} {self.unit:<9}{self.peak_rss_mb:>8.0f} MB{projections}"


def _timed(argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"code": done.returncode}
    if figures["code"] != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"`python -m benchmark {' '.join(argv[:2])}` failed in the benchmark: {last}")
    return figures


def measure(folder: Path, n: int, device: str, precision: str) -> list[Step]:
    """Import, then extract, each in a fresh process, into a fresh data root."""
    root = folder / "out"
    shutil.rmtree(root, ignore_errors=True)
    common = ["--dataset", "f30k", "--data-root", str(root), "--split-file", str(folder / "dataset_flickr30k.json")]
    imported = _timed(["data", "import-butd", "--tsv", str(folder / "tsv"), *common])
    extracted = _timed(["data", "extract-grid", *common, "--images", str(folder / "images"), "--weights", str(folder / "resnet152.pth"),
                        "--device", device, "--precision", precision])
    shutil.rmtree(root, ignore_errors=True)
    return [Step("import-butd", n, "rows/s", imported["seconds"], imported["peak_rss_mb"]),
            Step("extract-grid", n, "images/s", extracted["seconds"], extracted["peak_rss_mb"])]


def report(results: list[tuple[int, list[Step]]], device: str, precision: str) -> str:
    import torch

    where = torch.cuda.get_device_name() if device != "cpu" and torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} torch threads"
    lines = [f"real-data pipeline on generated Flickr30K-shaped inputs ({REGIONS}x{FEATURE_DIM} BUTD rows in {PARTS} TSV parts, "
             f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEGs, ResNet-152 at 448x448 -> 7x7x2048); {where}, --precision {precision}; "
             "each step a fresh process, timed from its command's start (after Python's imports) to its end",
             f"{'step':<13}{'items':>7}{'wall':>11}{'rate':>10} {'':<9}{'peak RSS':>11}"
             + "".join(f"{f'{name} ({n:,})':>19}" for name, n in DATASET_IMAGES.items())]
    for _, steps in results:
        lines += [step.row() for step in steps]
    return "\n".join(lines)
