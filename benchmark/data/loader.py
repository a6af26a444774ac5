"""One loader for every dataset, real or synthetic: validated, memory-mapped splits.

Feature arrays are opened with ``mmap_mode='r'`` so a 33 GB COCO train file is never read whole
into RAM. Every problem a user can fix raises a one-line ``UserError`` naming the file, what was
expected, and what to do.
"""

from __future__ import annotations

import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.data.layout import CAPTIONS_PER_IMAGE, DATASETS, TWIN_KINDS, DatasetSpec, SplitFiles
from benchmark.errors import UserError

DATA_ROOT_ENV = "ITR_BENCH_DATA"
_NAN_SCAN_BYTES = 64 << 20  # per step of the NaN/inf scan: 4,096 rows of 7x7x2048 grid features were a 1.6 GB copy


@dataclass
class Split:
    """One split: features (memory-mapped), captions and optional geometry, grid and twins."""

    name: str
    regions: np.ndarray  # (n_rows, n_regions, dim), memory-mapped
    rows_per_image: int  # 1, or 5 in releases that repeat each image's row per caption
    captions: list[str]
    boxes: np.ndarray | None = None  # (n_images, n_regions, 4) normalised [x1, y1, x2, y2]
    grid: np.ndarray | None = None  # (n_images, cells, dim), memory-mapped
    ids: list[str] | None = None
    twins: np.ndarray | None = None  # (n_groups, 1 + len(TWIN_KINDS)): the base, then one twin per kind

    @property
    def n_images(self) -> int:
        return self.regions.shape[0] // self.rows_per_image

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    def image_regions(self, images: np.ndarray) -> np.ndarray:
        """Region features of the given image indices (float32), read from the memory map."""
        return read_rows(self.regions, np.asarray(images) * self.rows_per_image)

    def image_grid(self, images: np.ndarray) -> np.ndarray | None:
        """Grid features of the given image indices (float32), or None without a grid."""
        return None if self.grid is None else read_rows(self.grid, np.asarray(images))


def read_rows(array: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """``array[rows]`` as float32, copied out of a memory map, whose pages are then released (``release_pages``)."""
    out = np.array(array[rows], dtype=np.float32)  # a copy: a slice of a float32 map would be a view of it
    release_pages(array)
    return out


def release_pages(array: np.ndarray) -> None:
    """Drop the pages of a memory-mapped file that this process has read from its resident set; they stay in
    the operating system's page cache, so reading them again costs no disk access. Without this, every
    page ever read through a map counts in the process's RSS: one epoch over a 20 GB feature file would
    show 20 GB resident. A no-op for in-memory arrays, and where ``madvise`` is missing."""
    mapping = getattr(array, "_mmap", None)  # numpy's handle on the map (shared by views of a memmap)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if mapping is not None and advice is not None and not mapping.closed:
        mapping.madvise(advice)


def resolve_root(data_root: str | os.PathLike | None) -> Path:
    """``--data-root``, else ``$ITR_BENCH_DATA``; it must exist."""
    root = str(data_root or os.environ.get(DATA_ROOT_ENV, ""))
    if not root:
        raise UserError(f"no data root given; pass --data-root PATH or set {DATA_ROOT_ENV} (see README 'Real data')")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise UserError(f"data root {path} does not exist; pass --data-root PATH or set {DATA_ROOT_ENV}")
    return path


def output_root(data_root: str | os.PathLike | None) -> Path:
    """Where a command writes ``<name>_precomp/``: ``--data-root``, else ``$ITR_BENCH_DATA``; created if missing."""
    root = str(data_root or os.environ.get(DATA_ROOT_ENV, ""))
    if not root:
        raise UserError(f"no data root given; pass --data-root PATH or set {DATA_ROOT_ENV}")
    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create data root {path} ({exc.strerror}); pass a writable --data-root") from None
    return path


def dataset_folder(spec: DatasetSpec, root: Path) -> Path:
    folder = root / spec.folder
    if not folder.is_dir():
        raise UserError(
            f"{folder} does not exist; expected {spec.name}'s precomp files there "
            f"(e.g. {spec.folder}/train_ims.npy, see README 'Real data')"
        )
    return folder


def _load_array(path: Path, mmap: bool = True, kinds: str = "f") -> np.ndarray:
    """A .npy array whose dtype is of one of numpy's ``kinds`` ("f" floats, "iu" integers); float16 is
    read, with a note."""
    try:
        array = np.load(path, mmap_mode="r" if mmap else None)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} is not a readable .npy array ({exc}); re-export it with numpy.save") from None
    if array.dtype.kind not in kinds:
        expected = "integer indices" if "f" not in kinds else "numbers" if "i" in kinds else "float32 features"
        raise UserError(f"{path} has dtype {array.dtype}; expected {expected}; re-export it with numpy.save")
    if array.dtype == np.float16:
        print(f"note: {path} is float16; it is read as float32 (half the disk, the same numbers up to fp16 rounding)", file=sys.stderr)
    return array


def _require(path: Path, what: str) -> Path:
    if path.is_symlink() and not path.exists():
        raise UserError(f"{path} is a symlink that resolves to no file (broken, or a loop); point it at the {what}")
    if not path.is_file():
        raise UserError(f"missing {path}: the {what}; see README 'Real data' for the expected layout")
    return path


def _check_finite(array: np.ndarray, path: Path) -> None:
    """Scan for NaN/inf in chunks (memory-mapped arrays stay off-heap and out of RSS), with progress when large."""
    rows = max(1, _NAN_SCAN_BYTES // max(1, array[:1].nbytes))
    steps = range(0, array.shape[0], rows)
    large = array.nbytes > (1 << 30)
    for start in tqdm(steps, desc=f"checking {path.name}", unit="chunk", disable=not large, leave=False):
        chunk = read_rows(array, slice(start, start + rows))
        if not np.isfinite(chunk).all():
            bad = start + int(np.argwhere(~np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1))[0, 0])
            raise UserError(f"{path} has NaN or inf values (first at row {bad}); regenerate or clean the features")


def _read_captions(path: Path) -> list[str]:
    """One caption per line, UTF-8 (as every release of the field's files); trailing blank lines go, and
    an empty line inside is kept (it stands for a caption) with a warning naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                        "re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror}); fix its permissions") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if empty := [number for number, line in enumerate(lines, start=1) if not line.strip()]:
        print(f"warning: {path} has {len(empty)} empty line(s), first at line {empty[0]}; an empty caption matches nothing",
              file=sys.stderr)
    return [line.strip() for line in lines]


def _rows_per_image(files: SplitFiles, n_rows: int, n_captions: int) -> int:
    """The field's rule: as many rows as captions means 5 rows (one per caption) per image."""
    if n_rows == n_captions:
        return CAPTIONS_PER_IMAGE
    if n_captions != CAPTIONS_PER_IMAGE * n_rows:
        raise UserError(
            f"{files.captions} has {n_captions} captions for {n_rows} images in {files.regions.name}; "
            f"expected {CAPTIONS_PER_IMAGE} per image ({CAPTIONS_PER_IMAGE * n_rows} lines)"
        )
    return 1


def _normalised_boxes(files: SplitFiles, n_images: int, n_regions: int) -> np.ndarray | None:
    """Boxes in [0, 1], from ``{split}_boxes.npy`` or from GSMN's pixel boxes and image sizes."""
    if files.boxes.is_file():
        boxes, source = np.asarray(_load_array(files.boxes, mmap=False, kinds="fiu"), dtype=np.float32), files.boxes
    elif files.pixel_boxes.is_file():
        source = files.pixel_boxes
        boxes = np.asarray(_load_array(files.pixel_boxes, mmap=False, kinds="fiu"), dtype=np.float32)
        _require(files.image_sizes, f"image sizes that normalise {files.pixel_boxes.name}")
        sizes = _load_sizes(files.image_sizes)
        if len(sizes) != n_images:
            raise UserError(f"{files.image_sizes} has {len(sizes)} entries for {n_images} images; regenerate it")
        if boxes.ndim == 3 and boxes.shape[0] == n_images:
            scale = np.array([[s["image_w"], s["image_h"], s["image_w"], s["image_h"]] for s in sizes], np.float32)
            boxes = boxes / scale[:, None, :]
    else:
        return None
    if boxes.shape != (n_images, n_regions, 4):
        raise UserError(
            f"{source} has shape {boxes.shape}; expected (n_images, n_regions, 4) = {(n_images, n_regions, 4)} "
            "to match the region features"
        )
    if not np.isfinite(boxes).all():
        raise UserError(f"{source} has NaN or inf values; regenerate the boxes")
    return np.clip(boxes, 0.0, 1.0)


def _load_sizes(path: Path) -> list[dict]:
    """GSMN's pickled ``{'image_h', 'image_w'}`` dicts (older files need latin1 decoding)."""
    for encoding in ("ASCII", "latin1"):
        try:
            sizes = np.load(path, allow_pickle=True, encoding=encoding)
            break
        except UnicodeError:  # numpy re-raises a py2 pickle's decode failure as UnicodeError
            continue
        except (ValueError, OSError) as exc:
            raise UserError(f"{path} is not a readable .npy array ({exc}); re-export it") from None
    else:
        raise UserError(f"{path} cannot be unpickled as ASCII or latin1; re-export it")
    try:
        return [{"image_w": float(s["image_w"]), "image_h": float(s["image_h"])} for s in sizes]
    except (TypeError, KeyError, IndexError):
        raise UserError(f"{path} must hold {{'image_h', 'image_w'}} dicts, one per image") from None


def _load_grid(files: SplitFiles, n_images: int, rows_per_image: int) -> np.ndarray | None:
    if not files.grid.is_file():
        return None
    grid = _load_array(files.grid)
    if grid.ndim != 3 or grid.shape[0] not in (n_images, n_images * rows_per_image):
        raise UserError(f"{files.grid} has shape {grid.shape}; expected (n_images={n_images}, cells, dim)")
    side = round(grid.shape[1] ** 0.5)
    if side * side != grid.shape[1]:
        raise UserError(f"{files.grid} has {grid.shape[1]} cells; expected a square grid such as 7x7=49")
    _check_finite(grid, files.grid)
    if grid.shape[0] != n_images:  # one row per caption, like the region file
        grid = grid[::rows_per_image]
    return grid


def _load_twins(files: SplitFiles, n_images: int) -> np.ndarray | None:
    if not files.twins.is_file():
        return None
    twins = np.asarray(_load_array(files.twins, mmap=False, kinds="iu"), dtype=np.int64)
    width = 1 + len(TWIN_KINDS)
    if twins.ndim != 2 or twins.shape[1] != width or twins.min(initial=0) < 0 or twins.max(initial=0) >= n_images:
        raise UserError(f"{files.twins} must be (n_groups, {width}) image indices below {n_images}; regenerate it "
                        "(`python -m benchmark data generate`)")
    return twins


def load_split(folder: Path, split: str) -> Split:
    """Load and validate one split from a ``<name>_precomp`` folder."""
    files = SplitFiles(folder, split)
    regions = _load_array(_require(files.regions, f"{split} region features"))
    if regions.ndim != 3 or 0 in regions.shape:
        raise UserError(f"{files.regions} has shape {regions.shape}; expected (n_images, n_regions, dim), e.g. (1000, 36, 2048)")
    captions = _read_captions(_require(files.captions, f"{split} captions"))
    rows_per_image = _rows_per_image(files, regions.shape[0], len(captions))
    _check_finite(regions, files.regions)
    n_images = regions.shape[0] // rows_per_image
    ids = _read_captions(files.ids) if files.ids.is_file() else None
    if ids is not None and len(ids) not in (n_images, regions.shape[0]):
        raise UserError(f"{files.ids} has {len(ids)} ids for {n_images} images; fix or remove it")
    return Split(
        name=split,
        regions=regions,
        rows_per_image=rows_per_image,
        captions=captions,
        boxes=_normalised_boxes(files, n_images, regions.shape[1]),
        grid=_load_grid(files, n_images, rows_per_image),
        ids=ids[::rows_per_image] if ids is not None and len(ids) != n_images else ids,
        twins=_load_twins(files, n_images),
    )


def check_consistent(splits: dict[str, Split], folder: Path) -> None:
    """All splits must agree on region and grid shapes, or a model cannot serve them all."""
    reference = next(iter(splits.values()))
    for split in splits.values():
        if split.regions.shape[1:] != reference.regions.shape[1:]:
            raise UserError(
                f"{folder}/{split.name}_ims.npy has regions of shape {split.regions.shape[1:]} but "
                f"{reference.name} has {reference.regions.shape[1:]}; all splits need the same (n_regions, dim)"
            )
        for attr in ("grid", "boxes"):
            if (getattr(split, attr) is None) != (getattr(reference, attr) is None):
                raise UserError(f"{folder}: {attr} files exist for some splits only; provide them for {', '.join(splits)}")
        if split.grid is not None and split.grid.shape[1:] != reference.grid.shape[1:]:
            raise UserError(f"{folder}/{split.name}_grid.npy has shape {split.grid.shape[1:]} per image; {reference.name} has {reference.grid.shape[1:]}")


def load_splits(spec: DatasetSpec, folder: Path, splits: tuple[str, ...] | None = None) -> dict[str, Split]:
    """Load the named splits (all of the dataset's by default) and check they fit together."""
    loaded = {name: load_split(folder, name) for name in (splits or spec.splits)}
    check_consistent(loaded, folder)
    return loaded


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]
