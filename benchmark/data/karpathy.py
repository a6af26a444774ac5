"""Karpathy's split files (``dataset_flickr30k.json``, ``dataset_coco.json``): which image is in which split, in
what order, and its captions.

Each entry of ``images[]`` has ``split`` (``train``, ``val``, ``test``, and for COCO ``restval``), a ``filename``
(COCO: also ``filepath``, e.g. ``val2014``, and ``cocoid``) and ``sentences[]`` with ``raw`` text. The field's
conventions, followed here: Karpathy's ``val`` is the dev split; COCO's ``restval`` joins train (unless
``restval=False``); COCO's 5,000 test images are the ``testall`` split (COCO 1K is its five folds); an image with
more than 5 captions keeps its first 5.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.layout import CAPTIONS_PER_IMAGE
from benchmark.errors import UserError

# Our split -> the Karpathy splits it takes, per dataset (images keep the order of the file).
SPLITS = {
    "f30k": {"train": ("train",), "dev": ("val",), "test": ("test",)},
    "coco": {"train": ("train", "restval"), "dev": ("val",), "testall": ("test",)},
}


@dataclass(frozen=True)
class KarpathyImage:
    """One image: its id as feature files name it (COCO's ``cocoid``, else the filename's stem), where the image
    file lies relative to the images folder, and its first 5 captions."""

    image_id: str
    path: str
    captions: tuple[str, ...]


def normalise_id(image_id: str | int) -> str:
    """Ids compare as text, with integers written without leading zeros (``000123`` and ``123`` are one image)."""
    text = str(image_id).strip()
    return str(int(text)) if text.isdigit() else text


def _caption(sentence: dict) -> str:
    raw = sentence.get("raw") or " ".join(sentence.get("tokens", []))
    return " ".join(str(raw).split())  # one line: newlines and runs of spaces inside a caption become one space


def _image(entry: dict, source: Path, position: int) -> KarpathyImage:
    try:
        filename = entry["filename"]
        image_id = entry["cocoid"] if "cocoid" in entry else Path(filename).stem
        captions = tuple(_caption(sentence) for sentence in entry["sentences"])
    except (KeyError, TypeError):
        raise UserError(f"{source}: images[{position}] lacks 'filename' or 'sentences'; is this Karpathy's split file "
                        "(dataset_flickr30k.json / dataset_coco.json)?") from None
    if len(captions) < CAPTIONS_PER_IMAGE:
        raise UserError(f"{source}: image {image_id} has {len(captions)} captions; the field's layout needs "
                        f"{CAPTIONS_PER_IMAGE} per image; use Karpathy's original split file")
    path = str(Path(entry.get("filepath", "")) / filename)
    return KarpathyImage(normalise_id(image_id), path, captions[:CAPTIONS_PER_IMAGE])


def read_splits(path: Path, dataset: str, restval: bool = True) -> dict[str, list[KarpathyImage]]:
    """Our splits of ``dataset``, each a list of images in the file's order; a one-line error for a file that is not
    a Karpathy split file, an image with fewer than 5 captions, or an image listed twice."""
    if dataset not in SPLITS:
        raise UserError(f"no Karpathy split mapping for dataset '{dataset}'; choose one of: {', '.join(SPLITS)}")
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))["images"]
    except FileNotFoundError:
        raise UserError(f"split file {path} does not exist; pass Karpathy's dataset_{'flickr30k' if dataset == 'f30k' else dataset}.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a Karpathy split file with an 'images' list ({type(exc).__name__}: {exc})") from None
    wanted = {karpathy: ours for ours, names in SPLITS[dataset].items() for karpathy in names
              if restval or karpathy != "restval"}
    splits: dict[str, list[KarpathyImage]] = {ours: [] for ours in SPLITS[dataset]}
    seen: dict[str, int] = {}
    for position, entry in enumerate(entries):
        split = wanted.get(entry.get("split") if isinstance(entry, dict) else None)
        if split is None:
            continue
        image = _image(entry, path, position)
        if image.image_id in seen:
            raise UserError(f"{path}: image {image.image_id} is listed twice (images[{seen[image.image_id]}] and "
                            f"images[{position}]); remove one")
        seen[image.image_id] = position
        splits[split].append(image)
    if empty := [name for name, images in splits.items() if not images]:
        raise UserError(f"{path} has no images for split(s) {', '.join(empty)}; is it the split file of {dataset}?")
    return splits
