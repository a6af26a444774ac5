"""Inputs in the formats researchers hold, made by the tests: BUTD TSV parts, a Karpathy split file, images."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDS = "a dog cat man woman red blue runs sits on the grass near street ball child holds".split()


@dataclass
class TsvRow:
    image_id: str
    width: float
    height: float
    boxes: np.ndarray  # (k, 4) float32 pixels
    features: np.ndarray  # (k, dim) float32

    def encode(self) -> bytes:
        fields = [self.image_id, f"{self.width:g}", f"{self.height:g}", str(len(self.boxes)),
                  base64.b64encode(self.boxes.astype(np.float32).tobytes()).decode(),
                  base64.b64encode(self.features.astype(np.float32).tobytes()).decode()]
        return ("\t".join(fields) + "\r\n").encode()


def make_row(image_id: str, rng: np.random.Generator, regions: int = 36, dim: int = 16,
             size: tuple[int, int] = (64, 48)) -> TsvRow:
    width, height = size
    corner = rng.uniform(0, 0.5, (regions, 2)) * [width, height]
    extent = rng.uniform(0.1, 0.5, (regions, 2)) * [width, height]
    boxes = np.concatenate([corner, corner + extent], axis=1).astype(np.float32)
    return TsvRow(image_id, width, height, boxes, rng.standard_normal((regions, dim)).astype(np.float32))


def write_tsv(folder: Path, rows: list[TsvRow], parts: int = 3, stem: str = "trainval.tsv") -> list[Path]:
    """The rows split over ``parts`` files ``stem.0``, ``stem.1``, ... (the BUTD release's naming)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{k}" for k in range(parts)]
    for k, path in enumerate(paths):
        path.write_bytes(b"".join(row.encode() for row in rows[k::parts]))
    return paths


def captions(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]


def write_karpathy(path: Path, images: list[dict]) -> Path:
    """``images``: dicts with ``id``, ``split`` and ``captions``; COCO-style when ``coco`` is set."""
    entries = []
    for image in images:
        entry = {"split": image["split"], "filename": f"{image['id']}.jpg",
                 "sentences": [{"raw": text, "tokens": text.split()} for text in image["captions"]]}
        if image.get("coco"):
            entry.update(cocoid=int(image["id"]), filepath="val2014", filename=f"COCO_val2014_{int(image['id']):012d}.jpg")
        entries.append(entry)
    path.write_text(json.dumps({"images": entries, "dataset": "test"}), encoding="utf-8")
    return path


def write_images(folder: Path, rows: list[TsvRow], seed: int = 0) -> None:
    """A JPEG per row, of the size its TSV row states."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for row in rows:
        pixels = rng.integers(0, 256, (int(row.height), int(row.width), 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{row.image_id}.jpg", quality=90)


@dataclass
class F30kInputs:
    tsv: list[Path]
    split_file: Path
    images: Path
    rows: dict[str, TsvRow]
    splits: dict[str, list[str]]  # our split -> ids in the split file's order
    captions: dict[str, list[str]]


def f30k_inputs(tmp: Path, sizes: dict[str, int] | None = None, regions: int = 36, dim: int = 16, parts: int = 3,
                seed: int = 0) -> F30kInputs:
    """A tiny Flickr30K: TSV parts (rows in another order than the split file, plus an image of no split), a
    Karpathy split file, and the images."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 12, "dev": 4, "test": 4}
    karpathy_name = {"train": "train", "dev": "val", "test": "test"}
    entries, texts, rows = [], {}, {}
    next_id = 1000092795
    for split, count in sizes.items():
        for _ in range(count):
            image_id = str(next_id)
            next_id += 7
            texts[image_id] = captions(rng, 5)
            entries.append({"id": image_id, "split": karpathy_name[split], "captions": texts[image_id]})
            rows[image_id] = make_row(image_id, rng, regions, dim, size=(int(rng.integers(40, 90)), int(rng.integers(40, 90))))
    rng.shuffle(entries)  # the split file's order is the order that counts
    splits = {split: [e["id"] for e in entries if e["split"] == karpathy_name[split]] for split in sizes}
    stray = make_row("1", rng, regions, dim)
    ordered = list(rows.values()) + [stray]
    rng.shuffle(ordered)
    split_file = write_karpathy(tmp / "dataset_flickr30k.json", entries)
    tsv = write_tsv(tmp / "tsv", ordered, parts)
    write_images(tmp / "images", list(rows.values()))
    return F30kInputs(tsv, split_file, tmp / "images", rows, splits, texts)
