"""The synthetic diagnostic dataset: each DSRLN claim made testable on a CPU in minutes.

Each image is a scene of a few objects (class, colour, box) on a background (scene type).

- **Region features** are class + colour embeddings plus noise, one set per region box (a few
  jittered boxes per object, plus clutter regions). They carry no position and **no background**:
  only the boxes say where things are, and only the grid says where the scene is.
  ``entangle > 0`` mixes the features of overlapping regions ("feature entanglement").
- **Grid features** (g x g cells, row-major from the top-left) carry the background embedding plus
  a class-agnostic objectness signal in the cells each object covers.
- **Captions**: five templates per image, each naming both mentioned objects' colours and classes,
  the spatial relation between them, and the background.
- Images come in **groups of four**: a base image, a *layout twin* (the two mentioned objects swap
  boxes, so the relation inverts), a *scene twin* (only the background changes) and an
  *attribute twin* (one mentioned object changes colour). The probes ask whether a model scores
  the base image above each twin for the base's captions: layout needs geometry (GISA), scene
  needs the grid (DIF), attribute needs word-region binding (local alignment).

The data is written in the precomp layout and read back by the same loader as real data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.config import SyntheticConfig
from benchmark.data.layout import DATASETS, SplitFiles
from benchmark.errors import UserError
from variants import cell_boxes

CLASSES = ("dog", "cat", "horse", "bird", "car", "bicycle", "man", "woman", "ball", "chair", "boat", "kite")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "brown", "pink")
SCENES = ("park", "beach", "street", "kitchen", "forest", "snowfield", "desert", "market")
PHRASES = {
    "left": ("left of", "to the left of", "on the left of"),
    "right": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}
TEMPLATES = (
    "a {ca} {a} {rel} a {cb} {b} in the {scene}",
    "a {cb} {b} {inv} a {ca} {a} in the {scene}",
    "in the {scene} a {ca} {a} is {rel} a {cb} {b}",
    "a {scene} scene with a {ca} {a} {rel} a {cb} {b}",
    "the {cb} {b} is {inv} the {ca} {a} at the {scene}",
)


@dataclass
class Scene:
    """One image's content. Objects 0 and 1 are the mentioned pair; ``relation`` is 0 relative to 1."""

    scene: int
    classes: np.ndarray  # (K,)
    colours: np.ndarray  # (K,)
    boxes: np.ndarray  # (K, 4) normalised [x1, y1, x2, y2]
    relation: str


@dataclass
class Embeddings:
    """The fixed vectors that features are made of (drawn once per dataset seed)."""

    classes: np.ndarray
    colours: np.ndarray
    scenes: np.ndarray
    objectness: np.ndarray


def validate(cfg: SyntheticConfig) -> None:
    """Clear errors for sizes the generator cannot honour."""
    limits = {"n_classes": len(CLASSES), "n_colours": len(COLOURS), "n_scenes": len(SCENES)}
    for name, limit in limits.items():
        if not 2 <= getattr(cfg, name) <= limit:
            raise UserError(f"data.synthetic.{name} must be between 2 and {limit}; got {getattr(cfg, name)}")
    if not 2 <= cfg.objects_per_image <= cfg.n_classes:
        raise UserError(f"data.synthetic.objects_per_image must be between 2 and n_classes ({cfg.n_classes})")
    if cfg.objects_per_image * cfg.regions_per_object > cfg.n_regions:
        raise UserError(
            "data.synthetic.n_regions must be at least objects_per_image * regions_per_object "
            f"({cfg.objects_per_image * cfg.regions_per_object}); got {cfg.n_regions}"
        )
    for name in ("train_groups", "dev_groups", "test_groups", "region_dim", "grid_dim", "grid_size", "regions_per_object"):
        if getattr(cfg, name) < 1:
            raise UserError(f"data.synthetic.{name} must be at least 1")
    if not 0.0 <= cfg.entangle <= 1.0 or cfg.noise < 0:
        raise UserError("data.synthetic.entangle must be in [0, 1] and noise at least 0")


def _box_around(centre: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.clip(np.concatenate([centre - size / 2, centre + size / 2]), 0.0, 1.0)


def _base_scene(rng: np.random.Generator, cfg: SyntheticConfig) -> Scene:
    k = cfg.objects_per_image
    classes = rng.choice(cfg.n_classes, size=k, replace=False)
    colours = rng.integers(cfg.n_colours, size=k)
    # The mentioned pair sits clearly apart on one axis: object 0 left of (or above) object 1.
    axis = int(rng.integers(2))
    near, far, across = rng.uniform(0.15, 0.4), rng.uniform(0.6, 0.85), rng.uniform(0.25, 0.75, size=2)
    centres = np.empty((2, 2))
    centres[:, axis] = (near, far)
    centres[:, 1 - axis] = across
    boxes = [_box_around(c, rng.uniform(0.15, 0.3, size=2)) for c in centres]
    boxes += [_box_around(rng.uniform(0.1, 0.9, size=2), rng.uniform(0.1, 0.25, size=2)) for _ in range(k - 2)]
    scene = Scene(int(rng.integers(cfg.n_scenes)), classes, colours, np.stack(boxes), ("left", "above")[axis])
    return _swap_pair(scene) if rng.random() < 0.5 else scene


def _swap_pair(scene: Scene) -> Scene:
    """The layout twin: the mentioned objects swap boxes, so their relation inverts."""
    boxes = scene.boxes.copy()
    boxes[[0, 1]] = boxes[[1, 0]]
    return dataclasses.replace(scene, boxes=boxes, relation=INVERSE[scene.relation])


def _other(rng: np.random.Generator, n: int, current: int) -> int:
    return int((current + rng.integers(1, n)) % n)


def _twins(rng: np.random.Generator, cfg: SyntheticConfig, base: Scene) -> list[Scene]:
    """[base, layout twin, scene twin, attribute twin]."""
    scene_twin = dataclasses.replace(base, scene=_other(rng, cfg.n_scenes, base.scene))
    colours = base.colours.copy()
    which = int(rng.integers(2))
    colours[which] = _other(rng, cfg.n_colours, colours[which])
    return [base, _swap_pair(base), scene_twin, dataclasses.replace(base, colours=colours)]


def captions(rng: np.random.Generator, scene: Scene) -> list[str]:
    """Five captions, one per template, each with randomly chosen relation phrasings."""
    words = {
        "a": CLASSES[scene.classes[0]], "b": CLASSES[scene.classes[1]],
        "ca": COLOURS[scene.colours[0]], "cb": COLOURS[scene.colours[1]], "scene": SCENES[scene.scene],
    }
    out = []
    for template in TEMPLATES:
        rel = PHRASES[scene.relation][rng.integers(len(PHRASES[scene.relation]))]
        inv_options = PHRASES[INVERSE[scene.relation]]
        out.append(template.format(rel=rel, inv=inv_options[rng.integers(len(inv_options))], **words))
    return out


def _iou(boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    return inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)


def _regions(rng: np.random.Generator, cfg: SyntheticConfig, emb: Embeddings, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(n_regions, region_dim) features and (n_regions, 4) boxes, in random order."""
    boxes, feats = [], []
    for cls, colour, box in zip(scene.classes, scene.colours, scene.boxes):
        size = box[2:] - box[:2]
        for _ in range(cfg.regions_per_object):
            jitter = rng.normal(0, 0.05, size=4) * np.tile(size, 2)
            boxes.append(np.clip(box + jitter, 0.0, 1.0))
            feats.append(emb.classes[cls] + emb.colours[colour])
    for _ in range(cfg.n_regions - len(boxes)):  # clutter: scene-independent, object-free
        boxes.append(_box_around(rng.uniform(0.05, 0.95, size=2), rng.uniform(0.05, 0.3, size=2)))
        feats.append(np.zeros(cfg.region_dim))
    boxes = np.sort(np.stack(boxes).reshape(-1, 2, 2), axis=1).reshape(-1, 4)  # keep x1<=x2, y1<=y2
    feats = np.stack(feats) + cfg.noise * rng.normal(size=(cfg.n_regions, cfg.region_dim))
    if cfg.entangle > 0:
        overlap = _iou(boxes)
        np.fill_diagonal(overlap, 0.0)
        weights = overlap / np.maximum(overlap.sum(axis=1, keepdims=True), 1e-9)
        mixed = overlap.sum(axis=1, keepdims=True) > 0
        feats = np.where(mixed, (1 - cfg.entangle) * feats + cfg.entangle * weights @ feats, feats)
    order = rng.permutation(cfg.n_regions)
    return feats[order].astype(np.float32), boxes[order].astype(np.float32)


def _grid(rng: np.random.Generator, cfg: SyntheticConfig, emb: Embeddings, scene: Scene) -> np.ndarray:
    cells = cell_boxes(cfg.grid_size)
    lo = np.maximum(cells[:, None, :2], scene.boxes[None, :, :2])
    hi = np.minimum(cells[:, None, 2:], scene.boxes[None, :, 2:])
    covered = np.prod(np.clip(hi - lo, 0, None), axis=-1) * cfg.grid_size**2  # fraction of each cell
    presence = covered.max(axis=1, keepdims=True)
    noise = cfg.noise * rng.normal(size=(len(cells), cfg.grid_dim))
    return (emb.scenes[scene.scene] + presence * emb.objectness + noise).astype(np.float32)


def _embeddings(cfg: SyntheticConfig) -> Embeddings:
    rng = np.random.default_rng([cfg.seed, 1_000])
    return Embeddings(
        classes=rng.normal(size=(cfg.n_classes, cfg.region_dim)),
        colours=rng.normal(size=(cfg.n_colours, cfg.region_dim)),
        scenes=rng.normal(size=(cfg.n_scenes, cfg.grid_dim)),
        objectness=rng.normal(size=cfg.grid_dim),
    )


def write_split(folder: Path, split: str, n_groups: int, cfg: SyntheticConfig, emb: Embeddings, stream: int) -> None:
    """Generate ``n_groups`` groups of four images and write them in the precomp layout."""
    rng = np.random.default_rng([cfg.seed, stream])
    scenes = [s for _ in range(n_groups) for s in _twins(rng, cfg, _base_scene(rng, cfg))]
    regions, boxes = zip(*(_regions(rng, cfg, emb, s) for s in scenes))
    files = SplitFiles(folder, split)
    np.save(files.regions, np.stack(regions))
    np.save(files.boxes, np.stack(boxes))
    np.save(files.grid, np.stack([_grid(rng, cfg, emb, s) for s in scenes]))
    np.save(files.twins, np.arange(4 * n_groups).reshape(n_groups, 4))
    files.captions.write_text("".join(c + "\n" for s in scenes for c in captions(rng, s)), encoding="utf-8")
    files.ids.write_text("".join(f"{split}-{i}\n" for i in range(len(scenes))), encoding="utf-8")


def config_digest(cfg: SyntheticConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]


def ensure_dataset(cfg: SyntheticConfig, results_dir: str | os.PathLike) -> Path:
    """The data root of the synthetic dataset for ``cfg``, generated on first use and cached.

    Generation writes to a temporary folder that is renamed into place, so an interrupted run never
    leaves a half-written cache behind.
    """
    validate(cfg)
    root = Path(results_dir) / "data" / f"synthetic-{config_digest(cfg)}"
    if (root / "manifest.json").is_file():
        return root
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    folder = tmp / DATASETS["synthetic"].folder
    folder.mkdir(parents=True)
    try:
        emb = _embeddings(cfg)
        sizes = {"train": cfg.train_groups, "dev": cfg.dev_groups, "test": cfg.test_groups}
        for stream, (split, n_groups) in enumerate(sizes.items()):
            write_split(folder, split, n_groups, cfg, emb, stream)
        (tmp / "manifest.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2), encoding="utf-8")
        tmp.rename(root)
    except OSError:
        if not (root / "manifest.json").is_file():
            raise
    finally:  # an interrupted generation, or one another process finished first, leaves nothing
        shutil.rmtree(tmp, ignore_errors=True)
    return root
