"""The synthetic diagnostic dataset: each DSRLN claim made testable on a CPU in minutes.

Each image is a scene of a few objects (class, colour, box) on a background (scene type); the two
objects the captions mention each stand on a surface of their own ("a red dog on grass").

- **Region features** are class + colour embeddings plus noise, one set per region box (a few
  jittered boxes per object, plus clutter regions). They carry no position, **no background and
  no surface**: only the boxes say where things are, and only the grid says what they stand on.
  ``entangle > 0`` mixes the features of overlapping regions ("feature entanglement").
- **Grid features** (g x g cells, row-major from the top-left) carry the background embedding, a
  class-agnostic objectness signal in the cells each object covers, and each mentioned object's
  surface embedding in the cells under its box (weighted by the share of the cell it covers).
- **Captions**: five templates per image, each naming both mentioned objects' colours, classes and
  surfaces, the spatial relation between them, and the background.
- **Noise**: dev and test features carry one Gaussian draw per group (std ``noise``). With
  ``fresh_train_noise`` (the default) the train split is written without it, and each training
  step draws every group's noise afresh (``benchmark.training.with_feature_noise``): no training
  image carries one draw that a model could memorise (README: the linear controls did, and
  overfit). ``entangle > 0`` mixes the written noise of overlapping regions, which fresh noise
  cannot reproduce, so the two do not go together.
- Images come in **groups of five**: a base image and one *twin* per probe, each differing from the
  base in exactly one factor (a minimal pair; every random draw written to the files is shared by
  the group):

  ========  ==================================  ===============================================
  twin      what changes                        what cannot tell it from the base, by construction
  ========  ==================================  ===============================================
  layout    the mentioned objects swap boxes    a model that ignores boxes and the grid (``sa``)
            (and carry their surfaces along)
  binding   the mentioned objects swap colours  a model that pools regions linearly (``none``):
                                                the sum of region features is unchanged
  context   the mentioned objects swap surfaces regions alone (identical), and the grid pooled
                                                without the box mask (its mean is unchanged)
  scene     only the background                 regions alone (identical)
  ========  ==================================  ===============================================

  The two mentioned objects have equal-sized boxes and different colours and surfaces, so every
  twin really differs and the invariances above are exact (``entangle = 0``). The probes ask
  whether a model scores the base above each twin for the base's captions.
- The **crowded** split holds twin groups made the same way, but with as many objects as the regions
  hold (``crowded_objects``: 5 at the defaults, against 3 in training). Its binding twins are the
  ``crowded_binding`` probe: binding a caption's words to the right regions among more distractors than
  training ever showed. The sum of region features is still unchanged by the swap, so ``none`` stays
  blind. Nothing trains or selects on this split; it is written from its own random stream, so the
  other splits are the same whatever its size.

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
from benchmark.data.layout import CROWDED_SPLIT, DATASETS, TWIN_KINDS, SplitFiles
from benchmark.errors import UserError
from benchmark.data.vocab import PAD, UNK, tokenize
from variants import FeatureDims, cell_boxes

CLASSES = ("dog", "cat", "horse", "bird", "car", "bicycle", "man", "woman", "ball", "chair", "boat", "kite")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "brown", "pink")
SCENES = ("park", "beach", "street", "kitchen", "forest", "snowfield", "desert", "market")
SURFACES = ("grass", "sand", "snow", "water", "rock", "wood", "tiles", "mud")
PHRASES = {
    "left": ("left of", "to the left of", "on the left of"),
    "right": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}
TEMPLATES = (
    "a {ca} {a} on {sa} {rel} a {cb} {b} on {sb} in the {scene}",
    "a {cb} {b} on {sb} {inv} a {ca} {a} on {sa} in the {scene}",
    "in the {scene} a {ca} {a} on {sa} is {rel} a {cb} {b} on {sb}",
    "a {scene} scene with a {ca} {a} on {sa} {rel} a {cb} {b} on {sb}",
    "the {cb} {b} on {sb} is {inv} the {ca} {a} on {sa} at the {scene}",
)


@dataclass
class Scene:
    """One image's content. Objects 0 and 1 are the mentioned pair; ``relation`` is 0 relative to 1."""

    scene: int
    classes: np.ndarray  # (K,)
    colours: np.ndarray  # (K,)
    boxes: np.ndarray  # (K, 4) normalised [x1, y1, x2, y2]
    surfaces: np.ndarray  # (2,) what the mentioned objects stand on
    relation: str


@dataclass
class Embeddings:
    """The fixed vectors that features are made of (drawn once per dataset seed)."""

    classes: np.ndarray
    colours: np.ndarray
    scenes: np.ndarray
    surfaces: np.ndarray
    objectness: np.ndarray


@dataclass
class Draws:
    """The random draws an image's features are made with, shared by a group's five images."""

    jitter: np.ndarray  # (objects x regions_per_object, 4), relative to each box's size
    clutter: np.ndarray  # (n_clutter, 4) boxes of object-free regions
    region_noise: np.ndarray  # (n_regions, region_dim)
    order: np.ndarray  # (n_regions,) permutation of the regions
    grid_noise: np.ndarray  # (cells, grid_dim)


def validate(cfg: SyntheticConfig) -> None:
    """Clear errors for sizes the generator cannot honour (each value's own range is checked when
    the config is resolved: ``benchmark.config.VALID``)."""
    limits = {"n_classes": len(CLASSES), "n_colours": len(COLOURS), "n_scenes": len(SCENES), "n_surfaces": len(SURFACES)}
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
    if cfg.entangle > 0 and cfg.fresh_train_noise:
        raise UserError("data.synthetic.entangle > 0 mixes the noise of overlapping regions, which fresh training noise cannot "
                        "reproduce; add data.synthetic.fresh_train_noise=false")


def _box_around(centre: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.clip(np.concatenate([centre - size / 2, centre + size / 2]), 0.0, 1.0)


def _base_scene(rng: np.random.Generator, cfg: SyntheticConfig) -> Scene:
    k = cfg.objects_per_image
    classes = rng.choice(cfg.n_classes, size=k, replace=False)
    colours = np.concatenate([rng.choice(cfg.n_colours, size=2, replace=False), rng.integers(cfg.n_colours, size=k - 2)])
    surfaces = rng.choice(cfg.n_surfaces, size=2, replace=False)
    # The mentioned pair sits clearly apart on one axis, object 0 left of (or above) object 1, in boxes of one
    # size (never clipped), so that swapping anything between them keeps the grid's mean.
    axis = int(rng.integers(2))
    near, far, across = rng.uniform(0.15, 0.4), rng.uniform(0.6, 0.85), rng.uniform(0.25, 0.75, size=2)
    centres = np.empty((2, 2))
    centres[:, axis] = (near, far)
    centres[:, 1 - axis] = across
    size = rng.uniform(0.15, 0.3, size=2)
    boxes = [_box_around(c, size) for c in centres]
    boxes += [_box_around(rng.uniform(0.1, 0.9, size=2), rng.uniform(0.1, 0.25, size=2)) for _ in range(k - 2)]
    scene = Scene(int(rng.integers(cfg.n_scenes)), classes, colours, np.stack(boxes), surfaces, ("left", "above")[axis])
    return _swap(scene, "boxes") if rng.random() < 0.5 else scene


def _swap(scene: Scene, attribute: str) -> Scene:
    """``scene`` with the mentioned objects' boxes, colours or surfaces swapped (boxes: the relation inverts)."""
    values = getattr(scene, attribute).copy()
    values[[0, 1]] = values[[1, 0]]
    relation = INVERSE[scene.relation] if attribute == "boxes" else scene.relation
    return dataclasses.replace(scene, **{attribute: values}, relation=relation)


def crowded_objects(cfg: SyntheticConfig) -> int:
    """Objects per image in the crowded split: every region slot holds an object (classes never repeat)."""
    return min(cfg.n_classes, cfg.n_regions // cfg.regions_per_object)


def _other(rng: np.random.Generator, n: int, current: int) -> int:
    return int((current + rng.integers(1, n)) % n)


def _group(rng: np.random.Generator, cfg: SyntheticConfig, base: Scene) -> list[Scene]:
    """The base and its twins, in the order of ``TWIN_KINDS``."""
    twins = {"layout": _swap(base, "boxes"), "binding": _swap(base, "colours"), "context": _swap(base, "surfaces"),
             "scene": dataclasses.replace(base, scene=_other(rng, cfg.n_scenes, base.scene))}
    return [base] + [twins[kind] for kind in TWIN_KINDS]


def captions(rng: np.random.Generator, scene: Scene) -> list[str]:
    """Five captions, one per template, each with randomly chosen relation phrasings."""
    words = {
        "a": CLASSES[scene.classes[0]], "b": CLASSES[scene.classes[1]],
        "ca": COLOURS[scene.colours[0]], "cb": COLOURS[scene.colours[1]],
        "sa": SURFACES[scene.surfaces[0]], "sb": SURFACES[scene.surfaces[1]], "scene": SCENES[scene.scene],
    }
    out = []
    for template in TEMPLATES:
        rel = PHRASES[scene.relation][rng.integers(len(PHRASES[scene.relation]))]
        inv_options = PHRASES[INVERSE[scene.relation]]
        out.append(template.format(rel=rel, inv=inv_options[rng.integers(len(inv_options))], **words))
    return out


def caption_words(cfg: SyntheticConfig) -> set[str]:
    """Every word a caption can hold at these settings: the vocabulary that a train split with every
    class, colour, surface, scene and phrasing builds (any split of the default size)."""
    blanks = dict.fromkeys(("a", "b", "ca", "cb", "sa", "sb", "scene", "rel", "inv"), "")
    texts = [template.format(**blanks) for template in TEMPLATES] + [p for phrases in PHRASES.values() for p in phrases]
    texts += [*CLASSES[:cfg.n_classes], *COLOURS[:cfg.n_colours], *SURFACES[:cfg.n_surfaces], *SCENES[:cfg.n_scenes]]
    return {word for text in texts for word in tokenize(text)}


def feature_dims(cfg: SyntheticConfig) -> FeatureDims:
    """The model-input sizes of the synthetic data at these settings, without generating it."""
    return FeatureDims(region_dim=cfg.region_dim, n_regions=cfg.n_regions, vocab_size=len((PAD, UNK)) + len(caption_words(cfg)),
                       grid_dim=cfg.grid_dim, grid_cells=cfg.grid_size**2)


def _iou(boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    return inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)


def _draws(rng: np.random.Generator, cfg: SyntheticConfig, noise: float) -> Draws:
    n_object_regions = cfg.objects_per_image * cfg.regions_per_object
    n_clutter = cfg.n_regions - n_object_regions
    return Draws(
        jitter=rng.normal(0, 0.05, size=(n_object_regions, 4)),
        clutter=np.array([_box_around(rng.uniform(0.05, 0.95, size=2), rng.uniform(0.05, 0.3, size=2))
                          for _ in range(n_clutter)]).reshape(n_clutter, 4),
        region_noise=noise * rng.normal(size=(cfg.n_regions, cfg.region_dim)),
        order=rng.permutation(cfg.n_regions),
        grid_noise=noise * rng.normal(size=(cfg.grid_size**2, cfg.grid_dim)),
    )


def _regions(cfg: SyntheticConfig, emb: Embeddings, scene: Scene, draws: Draws) -> tuple[np.ndarray, np.ndarray]:
    """(n_regions, region_dim) features and (n_regions, 4) boxes, in the group's random order."""
    object_boxes = np.repeat(scene.boxes, cfg.regions_per_object, axis=0)
    sizes = np.tile(object_boxes[:, 2:] - object_boxes[:, :2], 2)
    boxes = np.concatenate([np.clip(object_boxes + draws.jitter * sizes, 0.0, 1.0), draws.clutter])
    boxes = np.sort(boxes.reshape(-1, 2, 2), axis=1).reshape(-1, 4)  # keep x1<=x2, y1<=y2
    objects = np.repeat(emb.classes[scene.classes] + emb.colours[scene.colours], cfg.regions_per_object, axis=0)
    clutter = np.zeros((len(draws.clutter), cfg.region_dim))  # scene-independent, object-free
    feats = np.concatenate([objects, clutter]) + draws.region_noise
    if cfg.entangle > 0:
        overlap = _iou(boxes)
        np.fill_diagonal(overlap, 0.0)
        weights = overlap / np.maximum(overlap.sum(axis=1, keepdims=True), 1e-9)
        mixed = overlap.sum(axis=1, keepdims=True) > 0
        feats = np.where(mixed, (1 - cfg.entangle) * feats + cfg.entangle * weights @ feats, feats)
    return feats[draws.order].astype(np.float32), boxes[draws.order].astype(np.float32)


def coverage(boxes: np.ndarray, grid_size: int) -> np.ndarray:
    """(cells, K): the share of each grid cell that each box covers."""
    cells = cell_boxes(grid_size)
    lo = np.maximum(cells[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(cells[:, None, 2:], boxes[None, :, 2:])
    return np.prod(np.clip(hi - lo, 0, None), axis=-1) * grid_size**2


def _grid(cfg: SyntheticConfig, emb: Embeddings, scene: Scene, draws: Draws) -> np.ndarray:
    covered = coverage(scene.boxes, cfg.grid_size)
    presence = covered.max(axis=1, keepdims=True)
    surfaces = covered[:, :2] @ emb.surfaces[scene.surfaces]  # additive, so a swap keeps the mean
    return (emb.scenes[scene.scene] + presence * emb.objectness + surfaces + draws.grid_noise).astype(np.float32)


def _embeddings(cfg: SyntheticConfig) -> Embeddings:
    rng = np.random.default_rng([cfg.seed, 1_000])
    return Embeddings(
        classes=rng.normal(size=(cfg.n_classes, cfg.region_dim)),
        colours=rng.normal(size=(cfg.n_colours, cfg.region_dim)),
        scenes=rng.normal(size=(cfg.n_scenes, cfg.grid_dim)),
        surfaces=rng.normal(size=(cfg.n_surfaces, cfg.grid_dim)),
        objectness=rng.normal(size=cfg.grid_dim),
    )


def write_split(folder: Path, split: str, n_groups: int, cfg: SyntheticConfig, emb: Embeddings, stream: int) -> None:
    """Generate ``n_groups`` groups (a base and its twins) and write them in the precomp layout."""
    rng = np.random.default_rng([cfg.seed, stream])
    written = 0.0 if split == "train" and cfg.fresh_train_noise else cfg.noise  # (training draws it: with_feature_noise)
    scenes, draws = [], []
    for _ in range(n_groups):
        group = _group(rng, cfg, _base_scene(rng, cfg))
        scenes += group
        draws += [_draws(rng, cfg, written)] * len(group)
    regions, boxes = zip(*(_regions(cfg, emb, s, d) for s, d in zip(scenes, draws, strict=True)))
    files = SplitFiles(folder, split)
    np.save(files.regions, np.stack(regions))
    np.save(files.boxes, np.stack(boxes))
    np.save(files.grid, np.stack([_grid(cfg, emb, s, d) for s, d in zip(scenes, draws, strict=True)]))
    group_size = 1 + len(TWIN_KINDS)
    np.save(files.twins, np.arange(group_size * n_groups).reshape(n_groups, group_size))
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
        crowded = dataclasses.replace(cfg, objects_per_image=crowded_objects(cfg))
        write_split(folder, CROWDED_SPLIT, cfg.crowded_groups, crowded, emb, len(sizes))
        (tmp / "manifest.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2), encoding="utf-8")
        tmp.rename(root)
    except OSError as exc:
        if not (root / "manifest.json").is_file():  # (else another process finished it first)
            reason = exc.strerror or " ".join(str(exc).split())
            raise UserError(f"cannot write the synthetic dataset under {root.parent} ({reason}); "
                            "free space or pass another --results-dir") from None
    finally:  # an interrupted generation, or one another process finished first, leaves nothing
        shutil.rmtree(tmp, ignore_errors=True)
    return root
