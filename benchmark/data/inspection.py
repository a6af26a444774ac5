"""``data generate`` and ``data check``: human-readable reports on a dataset's files."""

from __future__ import annotations

from pathlib import Path

from benchmark.config import DataConfig, SyntheticConfig
from benchmark.data.datasets import dataset_root
from benchmark.data.layout import SplitFiles
from benchmark.data.loader import Split, check_consistent, dataset_folder, dataset_spec, load_split
from benchmark.data.synthetic import ensure_dataset
from benchmark.errors import UserError


def generate(cfg: SyntheticConfig, results_dir: Path) -> str:
    """Generate (or find cached) the synthetic dataset and describe it."""
    root = ensure_dataset(cfg, results_dir)
    spec = dataset_spec("synthetic")
    noise = (f"noise: std {cfg.noise}, drawn afresh at each training step, one draw per group (train is "
             "written without it); once per group in dev and test" if cfg.fresh_train_noise else f"noise: std {cfg.noise}, one draw per group in every split")
    return f"synthetic dataset at {root}\n" + check_folder(root / spec.folder, spec.splits)[0] + f"\n  {noise}"


def _describe(folder: Path, split: str) -> tuple[str, Split | None]:
    """One line on the split, and the split (None when it does not load)."""
    files = SplitFiles(folder, split)
    try:
        data = load_split(folder, split)
    except UserError as exc:
        return f"  {split:8} PROBLEM: {exc}", None
    parts = [f"{data.n_images} images", f"{data.n_captions} captions",
             f"regions {tuple(data.regions.shape[1:])}" + (" (5 rows per image)" if data.rows_per_image > 1 else "")]
    parts.append("boxes " + ("yes" if data.boxes is not None else f"missing ({files.boxes.name} or {files.pixel_boxes.name} + {files.image_sizes.name})"))
    parts.append(f"grid {tuple(data.grid.shape[1:])}" if data.grid is not None else f"grid missing ({files.grid.name})")
    if data.twins is not None:
        parts.append(f"{len(data.twins)} twin groups")
    return f"  {split:8} " + ", ".join(parts), data


def check_folder(folder: Path, splits: tuple[str, ...]) -> tuple[str, bool]:
    """A line per split, then whether the splits fit together, as ``run`` checks it."""
    described = [_describe(folder, split) for split in splits]
    lines = [line for line, _ in described]
    loaded = {split: data for split, (_, data) in zip(splits, described) if data is not None}
    if len(loaded) == len(splits):
        try:
            check_consistent(loaded, folder)
        except UserError as exc:
            lines.append(f"  PROBLEM: {exc}")
            return "\n".join(lines), False
    return "\n".join(lines), len(loaded) == len(splits)


def check(dataset: str, data_root: str | None, results_dir: Path) -> tuple[str, bool]:
    """Validate every split of a dataset; report shapes, optional files and problems."""
    spec = dataset_spec(dataset)
    folder = dataset_folder(spec, dataset_root(DataConfig(dataset=dataset, data_root=data_root or ""), results_dir))
    report, ok = check_folder(folder, spec.splits)
    verdict = "all splits load" if ok else "some splits have problems (see PROBLEM lines)"
    return f"{spec.name} at {folder}\n{report}\n{verdict}", ok
