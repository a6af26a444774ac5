"""``data import-butd``: the original bottom-up-attention TSV files and a Karpathy split file, streamed into the
precomp layout that ``data check`` and ``run`` read.

A TSV row is ``image_id, image_w, image_h, num_boxes, boxes, features``, tab-separated, with ``boxes``
(``num_boxes x 4`` pixel ``[x1, y1, x2, y2]``) and ``features`` (``num_boxes x dim``) as base64 float32. Each row is
decoded and written straight into its image's slot of a preallocated memory map (``staging``), so memory stays
flat over tens of GB. Problems are collected, not raised one at a time: at the end one line per kind of problem
names the first few cases and the fix, and nothing is published while any remains.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.data.karpathy import KarpathyImage, normalise_id, read_splits
from benchmark.data.layout import CAPTIONS_PER_IMAGE, DATASETS, SplitFiles
from benchmark.data.staging import Staging, StagedTable, refuse_existing
from benchmark.errors import UserError

COLUMNS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")
DEFAULT_REGIONS = 36  # BUTD's fixed-36 release, the field's precomp features
CHECKPOINT_SECONDS = 2.0
_LINE_BITS = 40  # a row's source: part number << 40 | line number
_ASPECT_TOLERANCE = 0.01
_BOX_TOLERANCE = 1.0  # pixels a box may reach past the image's stated size


@dataclass
class Row:
    image_id: str
    width: float
    height: float
    boxes: np.ndarray  # (num_boxes, 4) pixel [x1, y1, x2, y2]
    features: np.ndarray  # (num_boxes, dim)


def _floats(field_: bytes, what: str) -> np.ndarray:
    if field_.startswith((b"b'", b'b"')):  # written by str(bytes) in some Python 3 ports of generate_tsv.py
        field_ = field_[2:-1]
    try:
        raw = base64.b64decode(field_, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"its {what} are not valid base64") from None
    if len(raw) % 4:
        raise ValueError(f"its {what} are {len(raw)} bytes, not a whole number of float32")
    return np.frombuffer(raw, dtype="<f4")


def parse_row(line: bytes) -> Row:
    """One TSV line; ValueError saying what is wrong with it."""
    fields = line.rstrip(b"\r\n").split(b"\t")
    if len(fields) != len(COLUMNS):
        raise ValueError(f"it has {len(fields)} tab-separated columns; expected {len(COLUMNS)} ({', '.join(COLUMNS)})")
    try:
        image_id = normalise_id(fields[0].decode())
        width, height, count = float(fields[1]), float(fields[2]), int(fields[3])
    except (UnicodeDecodeError, ValueError):
        raise ValueError("its image_id, image_w, image_h or num_boxes is not a number") from None
    boxes, features = _floats(fields[4], "boxes"), _floats(fields[5], "features")
    if count <= 0 or boxes.size != 4 * count:
        raise ValueError(f"num_boxes is {count} but its boxes hold {boxes.size} numbers ({4 * count} expected)")
    if features.size % count:
        raise ValueError(f"its {features.size} feature numbers do not split into {count} boxes")
    return Row(image_id, width, height, boxes.reshape(count, 4), features.reshape(count, -1))


def tsv_parts(paths: list[Path]) -> list[Path]:
    """The TSV files: each path is a file, or a folder whose ``*.tsv`` and ``*.tsv.N`` files are taken, in natural
    order (``x.tsv.2`` before ``x.tsv.10``)."""
    parts: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [p for p in path.iterdir() if p.is_file() and re.search(r"\.tsv(\.\d+)?$", p.name)]
            if not found:
                raise UserError(f"{path} holds no *.tsv or *.tsv.N files; pass the BUTD TSV files or their folder")
            parts.extend(sorted(found, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]))
        elif path.is_file():
            parts.append(path)
        else:
            raise UserError(f"TSV file {path} does not exist; pass the BUTD TSV files (e.g. trainval/*.tsv.*) or their folder")
    if len(set(parts)) != len(parts):
        twice = next(part for part in parts if parts.count(part) > 1)
        raise UserError(f"TSV file {twice} is given twice; pass each part once")
    return parts


def _first_row(part: Path) -> Row:
    with open(part, "rb") as handle:
        line = handle.readline()
    try:
        return parse_row(line)
    except ValueError as exc:
        raise UserError(f"{part} line 1 is not a BUTD TSV row: {exc}; pass the bottom-up-attention TSV files") from None


@dataclass
class Problems:
    """What went wrong, by kind: a count and the first few cases of each, and the fix. Any problem stops
    publication."""

    counts: dict[str, int] = field(default_factory=dict)
    cases: dict[str, list[str]] = field(default_factory=dict)
    fixes: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, case: str, fix: str, count: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + count
        self.cases[kind] = (self.cases.get(kind, []) + [case])[:3]
        self.fixes[kind] = fix

    def merge(self, other: Problems) -> None:
        for kind, count in other.counts.items():
            for case in other.cases[kind]:
                self.add(kind, case, other.fixes[kind], count=0)
            self.counts[kind] += count

    def lines(self) -> list[str]:
        return [f"problem: {kind}: {count:,} (e.g. {'; '.join(self.cases[kind])}); {self.fixes[kind]}"
                for kind, count in self.counts.items()]


@dataclass
class Tally:
    """What one TSV part gave besides its rows, kept in the staging record so a resumed import still reports it."""

    problems: Problems = field(default_factory=Problems)
    rejected: list[str] = field(default_factory=list)  # ids of images whose row was refused (a problem says why)
    outside: int = 0  # rows of images in none of the splits
    identical_duplicates: int = 0
    rescaled: int = 0  # images whose file is a rescaled copy of the size the TSV states

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Tally:
        if not data:
            return cls()
        fields = dict(data)
        return cls(Problems(**fields.pop("problems")), **fields)


def _digest(images: list[KarpathyImage]) -> str:
    return hashlib.sha256("\n".join(image.image_id for image in images).encode()).hexdigest()[:16]


class _Importer:
    """One import: where each image goes, the staged tables, and the tally of the part being read."""

    def __init__(self, splits: dict[str, list[KarpathyImage]], staging: Staging, regions: int, dim: int,
                 images_dir: Path | None):
        self.splits, self.staging, self.regions, self.dim, self.images_dir = splits, staging, regions, dim, images_dir
        self.slots = {image.image_id: (split, index) for split, images in splits.items() for index, image in enumerate(images)}
        self.tables = {split: staging.table(split, len(images), {"ims.npy": ((regions, dim), "float32"),
                                                                 "boxes.npy": ((regions, 4), "float32")})
                       for split, images in splits.items()}
        self.tally = Tally()
        self.part_names: dict[int, str] = {}

    def where(self, source: int) -> str:
        return f"{self.part_names.get(source >> _LINE_BITS, '?')} line {source & ((1 << _LINE_BITS) - 1)}"

    def forget_rows(self) -> None:
        """Empty every slot: the parts will be read again."""
        for table in self.tables.values():
            table.source[:] = -1

    def add(self, row: Row, source: int) -> None:
        slot = self.slots.get(row.image_id)
        if slot is None:
            self.tally.outside += 1
            return
        split, index = slot
        table = self.tables[split]
        if not self._valid(row, source, self.splits[split][index]):
            self.tally.rejected.append(row.image_id)
            return
        boxes = row.boxes / np.array([row.width, row.height, row.width, row.height], np.float32)
        if table.source[index] >= 0 and table.source[index] != source:
            self._duplicate(row, boxes, table, index, source)
            return
        table.write(index, source, **{"ims.npy": row.features, "boxes.npy": boxes})

    def _valid(self, row: Row, source: int, image: KarpathyImage) -> bool:
        here, problems = f"image {row.image_id} ({self.where(source)})", self.tally.problems
        if len(row.boxes) != self.regions:
            problems.add("images with another box count", f"{here} has {len(row.boxes)}",
                         f"the layout needs exactly {self.regions} boxes per image (10-100 adaptive boxes cannot be "
                         f"stacked): use the fixed-{self.regions} BUTD features, or pass --regions N if every image has N")
            return False
        if row.features.shape[1] != self.dim:
            problems.add("rows with another feature size", f"{here} has {row.features.shape[1]}-d features",
                         f"every row needs {self.dim}-d features like the first; import features of one extractor")
            return False
        if row.width <= 0 or row.height <= 0 or (row.boxes < -_BOX_TOLERANCE).any() or \
                (row.boxes[:, 0::2] > row.width + _BOX_TOLERANCE).any() or (row.boxes[:, 1::2] > row.height + _BOX_TOLERANCE).any():
            problems.add("boxes outside the stated image size", f"{here} is {row.width:g}x{row.height:g}",
                         "the TSV's image_w/image_h do not match its boxes; re-extract those images")
            return False
        return self.images_dir is None or self._size_matches(row, here, image)

    def _size_matches(self, row: Row, here: str, image: KarpathyImage) -> bool:
        from PIL import Image, UnidentifiedImageError

        path = self.images_dir / image.path
        try:
            with Image.open(path) as opened:
                width, height = opened.size
        except (OSError, UnidentifiedImageError):
            self.tally.problems.add("images not readable", f"{path}",
                                    "replace those files, or pass --images pointing at the dataset's image folder")
            return False
        if abs(width / height - row.width / row.height) > _ASPECT_TOLERANCE * row.width / row.height:
            self.tally.problems.add("image sizes that differ from the TSV's", f"{here} says {row.width:g}x{row.height:g}, "
                                    f"{path.name} is {width}x{height}",
                                    "the features were extracted from other images; use the TSV made from these images")
            return False
        self.tally.rescaled += (width, height) != (row.width, row.height)  # same shape, other scale: boxes still fit
        return True

    def _duplicate(self, row: Row, boxes: np.ndarray, table: StagedTable, index: int, source: int) -> None:
        same = np.array_equal(table.column("ims.npy")[index], row.features) and np.array_equal(table.column("boxes.npy")[index], boxes)
        if same:
            self.tally.identical_duplicates += 1
        else:
            self.tally.problems.add("image ids that appear twice with different features",
                                    f"image {row.image_id} at {self.where(int(table.source[index]))} and {self.where(source)}",
                                    "keep one row per image: remove the other part or row")


def import_butd(tsv_paths: list[Path], split_file: Path, dataset: str, out_root: Path, regions: int = DEFAULT_REGIONS,
                restval: bool = True, drop_missing: bool = False, images_dir: Path | None = None,
                restart: bool = False) -> str:
    """Import BUTD TSV parts into ``out_root/<dataset>_precomp``; returns the summary. Raises UserError, after
    printing one line per kind of problem, when the import cannot be published."""
    splits = read_splits(split_file, dataset, restval)
    parts = tsv_parts(tsv_paths)
    if images_dir is not None and not Path(images_dir).is_dir():
        raise UserError(f"image folder {images_dir} does not exist; pass --images DIR (the folder of the dataset's images)")
    folder = Path(out_root) / DATASETS[dataset].folder
    dim = _first_row(parts[0]).features.shape[1]
    folder.mkdir(parents=True, exist_ok=True)
    inputs = {"dataset": dataset, "regions": regions, "dim": dim, "restval": restval,
              "images": str(images_dir) if images_dir else None, **{f"{split} ids": _digest(images) for split, images in splits.items()}}
    staging = Staging(folder, "import-butd", inputs, restart)
    if staging.publishing:
        staging.finish_publication()
        return f"finished publishing the import into {folder} that an earlier run had prepared"
    # Files tied to the image order of an earlier import (grid features, twins, GSMN boxes) are refused too.
    refuse_existing([getattr(SplitFiles(folder, split), kind) for split in splits for kind in
                     ("regions", "boxes", "captions", "ids", "grid", "twins", "pixel_boxes", "image_sizes")],
                    "import into another --data-root, or move the existing files away")
    importer = _Importer(splits, staging, regions, dim, Path(images_dir) if images_dir else None)
    tables = list(importer.tables.values())
    staging.check_space(tables, copies=2 if drop_missing else 1)
    if staging.resumed:
        print(f"resuming the import in {staging.dir} ({sum(int((t.source >= 0).sum()) for t in tables):,} images already in)",
              file=sys.stderr)
    _read_parts(parts, importer, staging, tables)
    return _publish(importer, folder, drop_missing)


def _part_records(parts: list[Path], importer: _Importer, staging: Staging) -> list[dict]:
    """Each part's record (its size and time, how far it was read, its tally). When a part read before has
    changed or is no longer given, every part is read again from its first line: the rows and tallies of the
    others depend on it (a row it held may have been skipped elsewhere as a duplicate)."""
    records = staging.progress.setdefault("parts", {})
    keys = [str(part.resolve()) for part in parts]
    signatures = {key: {"size": part.stat().st_size, "mtime_ns": part.stat().st_mtime_ns} for key, part in zip(keys, parts)}
    if stale := [Path(key).name for key, record in records.items()
                 if key not in signatures or {k: record[k] for k in signatures[key]} != signatures[key]]:
        print(f"{', '.join(stale)} changed or is no longer given since the interrupted import; reading every part again",
              file=sys.stderr)
        importer.forget_rows()
        records.clear()
    for key, part in zip(keys, parts):
        record = records.setdefault(key, {**signatures[key], "number": len(records), "offset": 0, "line": 0, "tally": None})
        importer.part_names[record["number"]] = part.name
    return [records[key] for key in keys]


def _read_parts(parts: list[Path], importer: _Importer, staging: Staging, tables: list[StagedTable]) -> None:
    records = _part_records(parts, importer, staging)
    rows, started, last = 0, time.monotonic(), time.monotonic()

    def checkpoint(record: dict) -> None:
        record["tally"] = importer.tally.to_dict()
        staging.save(tables)

    with tqdm(total=sum(record["size"] for record in records), unit="B", unit_scale=True, desc="importing",
              dynamic_ncols=True, mininterval=1.0) as bar:
        for part, record in zip(parts, records):
            bar.update(record["offset"])
            if record["offset"] == record["size"]:
                continue
            importer.tally = Tally.from_dict(record["tally"])
            with open(part, "rb") as handle:
                handle.seek(record["offset"])
                for line in handle:
                    record["line"] += 1
                    record["offset"] += len(line)
                    bar.update(len(line))
                    if not line.strip():
                        continue
                    source = record["number"] << _LINE_BITS | record["line"]
                    try:
                        importer.add(parse_row(line), source)
                    except ValueError as exc:
                        importer.tally.problems.add("unreadable rows", f"{part.name} line {record['line']}: {exc}",
                                                    "those rows are not BUTD TSV rows; re-export or remove them")
                    rows += 1
                    if time.monotonic() - last > CHECKPOINT_SECONDS:
                        checkpoint(record)
                        last = time.monotonic()
                        bar.set_postfix_str(f"{rows / (last - started):,.0f} rows/s")
            checkpoint(record)


def _publish(importer: _Importer, folder: Path, drop_missing: bool) -> str:
    total = Tally()
    for record in importer.staging.progress["parts"].values():
        tally = Tally.from_dict(record["tally"])
        total.problems.merge(tally.problems)
        total.rejected += tally.rejected
        total.outside, total.identical_duplicates, total.rescaled = (
            total.outside + tally.outside, total.identical_duplicates + tally.identical_duplicates, total.rescaled + tally.rescaled)
    problems, rejected = total.problems, set(total.rejected)
    keep: dict[str, np.ndarray | None] = {}
    dropped = 0
    for split, table in importer.tables.items():
        absent = [i for i in table.missing if importer.splits[split][i].image_id not in rejected]
        if absent and drop_missing and len(absent) < table.n_rows:
            keep[split], dropped = np.flatnonzero(table.source >= 0), dropped + len(absent)
            continue
        keep[split] = None
        if absent and len(absent) == table.n_rows:
            problems.add("splits with none of their images in the TSV", f"{split}: {table.n_rows:,} images, e.g. "
                         f"{importer.splits[split][0].image_id}", "check that the TSV's image_id column holds the split "
                         "file's ids (COCO's cocoid, else the filename's stem) and that every part is given")
            continue
        for index in absent:
            problems.add("images of the split file in no TSV part", f"{split} image {importer.splits[split][index].image_id}",
                         "add the TSV part that holds them, or pass --drop-missing to leave them out")
    for line in problems.lines():
        print(line, file=sys.stderr)
    if problems.counts:
        raise UserError(f"nothing was published: {len(problems.counts)} kind(s) of problem above; the images imported so far "
                        f"stay in {importer.staging.dir}, so fixing the inputs and rerunning resumes (--restart starts over)")
    lines, moves = [], []
    for split, table in importer.tables.items():
        images = importer.splits[split] if keep[split] is None else [importer.splits[split][i] for i in keep[split]]
        moves += table.prepare(folder, {"caps.txt": [c for image in images for c in image.captions],
                                        "ids.txt": [image.image_id for image in images]}, keep[split])
        lines.append(f"  {split:8} {len(images):,} images, {CAPTIONS_PER_IMAGE * len(images):,} captions")
    importer.staging.publish(moves)
    notes = [f"{total.outside:,} TSV rows of images in none of these splits were skipped"] if total.outside else []
    notes += [f"{total.identical_duplicates:,} repeated rows with identical features were skipped"] if total.identical_duplicates else []
    notes += [f"{dropped:,} images in no TSV part were left out (--drop-missing)"] if dropped else []
    notes += [f"{total.rescaled:,} images are a rescaled copy of the size the TSV states (boxes are normalised, so they "
              "still fit)"] if total.rescaled else []
    return "\n".join([f"imported into {folder}", *lines, *(f"note: {n}" for n in notes)])
