"""``data extract-grid``: grid features from the dataset's images, in the order of its region features.

The field's choice (DSRAN, DLCT) is torchvision's ResNet-152: its C5 map, 2048-d, average-pooled to 7x7 cells.
Each image is resized whole to ``image_size`` x ``image_size`` (no crop), so cell ``r*g + c`` covers rows
``[r/g, (r+1)/g)`` of the image height and columns ``[c/g, (c+1)/g)`` of its width, the cell geometry the loader
documents and DIF's box-to-cell mask assumes. The weights come from a local file; nothing is downloaded. Images
are decoded by DataLoader workers, rows land in a staged memory map (``staging``), and an interrupted extraction
resumes with the images it had.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from benchmark.data.karpathy import read_splits
from benchmark.data.layout import DATASETS, SplitFiles
from benchmark.data.loader import dataset_folder, resolve_root
from benchmark.data.staging import Staging, refuse_existing
from benchmark.errors import UserError
from benchmark.reproducibility import resolve_device
from variants import import_torchvision

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
C5_STRIDE = 32
CHECKPOINT_SECONDS = 2.0


def load_backbone(name: str, weights: Path) -> tuple[torch.nn.Module, int]:
    """The ResNet's layers up to C5 with the weights of a local file, and C5's channel count."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    if not Path(weights).is_file():
        raise UserError(f"weights file {weights} does not exist; pass torchvision's {name} state dict (a .pth file), "
                        "e.g. saved with torch.save(torchvision.models.{name}(weights='DEFAULT').state_dict(), PATH)")
    model = getattr(import_torchvision().models, name)(weights=None)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        model.load_state_dict(state)
    except Exception as exc:  # any unreadable or mismatched file: torch raises several types
        reason = str(exc).strip().splitlines()[0][:200]
        raise UserError(f"{weights} is not a state dict of torchvision's {name} ({type(exc).__name__}: {reason}); "
                        "pass the --backbone its weights belong to") from None
    return torch.nn.Sequential(*list(model.children())[:-2]).eval(), model.fc.in_features  # drop avgpool and fc


def pool_cells(c5: torch.Tensor, grid: int) -> torch.Tensor:
    """``(batch, channels, h, w)`` maps -> ``(batch, grid*grid, channels)`` cells, row-major from the top-left."""
    return torch.nn.functional.adaptive_avg_pool2d(c5, grid).flatten(2).transpose(1, 2)


class _Images(torch.utils.data.Dataset):
    """Decoded images resized to ``image_size`` squares, as uint8 (a quarter of float32's bytes to move; ``normalise``
    finishes them on the device). Items are ``(table, row)`` pairs; an unreadable file gives a zero image and
    ``ok=False``."""

    def __init__(self, paths: list[list[Path]], items: list[tuple[int, int]], image_size: int):
        import_torchvision()
        from torchvision.transforms import v2 as transforms

        self.paths, self.items, self.size = paths, items, image_size
        self.transform = transforms.Compose([transforms.Resize((image_size, image_size), antialias=True), transforms.ToImage()])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, int, torch.Tensor, bool]:
        from PIL import Image, UnidentifiedImageError

        table, row = self.items[i]
        try:
            with Image.open(self.paths[table][row]) as image:
                return table, row, self.transform(image.convert("RGB")), True
        except (OSError, UnidentifiedImageError, ValueError):
            return table, row, torch.zeros(3, self.size, self.size, dtype=torch.uint8), False


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(batch, 3, h, w)`` images -> the float input torchvision's ImageNet ResNets expect, channels-last."""
    from torchvision.transforms.v2 import functional

    images = functional.to_dtype(images, torch.float32, scale=True)
    return functional.normalize(images, IMAGENET_MEAN, IMAGENET_STD).contiguous(memory_format=torch.channels_last)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _split_images(folder: Path, split: str, by_id: dict[str, str], images_dir: Path) -> list[Path]:
    """The image file of each id in the split's ids file, in its order; a one-line error when any is unknown or absent."""
    ids_file = SplitFiles(folder, split).ids
    if not ids_file.is_file():
        raise UserError(f"missing {ids_file}: extract-grid follows the image order of the region features' ids; "
                        "import them with `data import-butd`, or write one image id per line")
    ids = [line.strip() for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if unknown := [image_id for image_id in ids if image_id not in by_id]:
        raise UserError(f"{len(unknown)} id(s) of {ids_file} are not in the split file (first: {unknown[0]}); "
                        "pass the split file the features were imported with")
    paths = [images_dir / by_id[image_id] for image_id in ids]
    if absent := [path for path in paths if not path.is_file()]:
        raise UserError(f"{len(absent)} image file(s) of {split} are missing (first: {absent[0]}); "
                        "pass --images, the folder that holds the dataset's images")
    return paths


def extract_grid(dataset: str, data_root: str | None, split_file: Path, images_dir: Path, weights: Path,
                 backbone: str = "resnet152", image_size: int = 448, grid: int = 7, batch_size: int | None = None,
                 workers: int | None = None, device: str = "auto", precision: str = "auto",
                 restart: bool = False) -> str:
    """Write ``{split}_grid.npy`` for every split of the dataset; returns the summary."""
    if image_size // C5_STRIDE < grid:
        raise UserError(f"--image-size {image_size} gives a {image_size // C5_STRIDE}x{image_size // C5_STRIDE} C5 map, "
                        f"smaller than the {grid}x{grid} grid; use --image-size {C5_STRIDE * grid} or more")
    if not Path(images_dir).is_dir():
        raise UserError(f"image folder {images_dir} does not exist; pass --images DIR (the folder of the dataset's images)")
    spec = DATASETS[dataset]
    folder = dataset_folder(spec, resolve_root(data_root))
    by_id = {image.image_id: image.path for images in read_splits(split_file, dataset).values() for image in images}
    paths = {split: _split_images(folder, split, by_id, Path(images_dir)) for split in spec.splits}
    target = resolve_device(device)
    bf16 = precision == "bf16" or (precision == "auto" and target.type == "cuda")
    model, channels = load_backbone(backbone, weights)
    inputs = {"backbone": backbone, "weights": _file_digest(weights), "image_size": image_size, "grid": grid, "bf16": bf16,
              **{f"{split} images": hashlib.sha256("\n".join(map(str, split_paths)).encode()).hexdigest()[:16]
                 for split, split_paths in paths.items()}}
    staging = Staging(folder, "extract-grid", inputs, restart)
    if staging.publishing:
        staging.finish_publication()
        return f"finished publishing the grid features in {folder} that an earlier run had extracted"
    refuse_existing([SplitFiles(folder, split).grid for split in spec.splits], "move the existing grid files away first")
    tables = {split: staging.table(split, len(split_paths), {"grid.npy": ((grid * grid, channels), "float32")})
              for split, split_paths in paths.items()}
    staging.check_space(list(tables.values()))
    model = model.to(target, memory_format=torch.channels_last)
    batch_size = batch_size or (64 if target.type == "cuda" else 16)
    workers = min(16, len(os.sched_getaffinity(0))) if workers is None else workers
    unreadable: list[Path] = []
    started = last = time.monotonic()
    splits = list(tables)
    items = [(k, int(row)) for k, split in enumerate(splits) for row in tables[split].missing]
    loader = torch.utils.data.DataLoader(_Images([paths[split] for split in splits], items, image_size), batch_size=batch_size,
                                         num_workers=workers, pin_memory=target.type == "cuda")
    with tqdm(total=len(items), unit="img", desc=f"extracting ({backbone}, {target.type}{', bf16' if bf16 else ''})",
              dynamic_ncols=True, mininterval=1.0) as bar:
        for which, rows, images, ok in loader:
            with torch.inference_mode(), torch.autocast(target.type, torch.bfloat16, enabled=bf16):
                c5 = model(normalise(images.to(target, non_blocking=True)))
            cells = pool_cells(c5.float(), grid).cpu().numpy()
            for k, split in enumerate(splits):
                mine = (which.numpy() == k) & ok.numpy()
                tables[split].write(rows.numpy()[mine], 0, **{"grid.npy": cells[mine]})
            unreadable += [paths[splits[k]][row] for k, row, good in zip(which.tolist(), rows.tolist(), ok.tolist()) if not good]
            bar.update(len(rows))
            if time.monotonic() - last > CHECKPOINT_SECONDS:
                staging.save(list(tables.values()))
                last = time.monotonic()
    staging.save(list(tables.values()))
    if unreadable:
        raise UserError(f"{len(unreadable)} image(s) could not be decoded (first: {unreadable[0]}); nothing was published; "
                        f"replace them and rerun to resume (the other images stay in {staging.dir})")
    staging.publish([move for table in tables.values() for move in table.prepare(folder, {})])
    seconds = time.monotonic() - started
    lines = [f"{split:8} {len(split_paths):,} images -> {SplitFiles(folder, split).grid.name} "
             f"({len(split_paths)}, {grid * grid}, {channels})" for split, split_paths in paths.items()]
    return "\n".join([f"grid features in {folder}", *(f"  {line}" for line in lines),
                      f"{len(items):,} images in {seconds:.1f} s ({len(items) / max(seconds, 1e-9):.1f} images/s)"])
