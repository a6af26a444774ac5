"""``variants``: what the registry offers, per axis, with sources, and with ``details`` the parameter counts
of every component and of every one-component pair of the default ablation grid (what differs, and where)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from benchmark.ablate.grid import load_grid
from benchmark.config import DataConfig, ModelConfig, SyntheticConfig
from benchmark.data import synthetic
from benchmark.data.datasets import open_dataset
from benchmark.data.vocab import Vocabulary
from variants import ALIASES, AXES, FeatureDims, build_model, count_parameters, one_component_pairs, parse_variant


def _dims(dataset: str, data_root: str | None, results_dir: Path) -> FeatureDims:
    """The dataset's model-input sizes: computed for the synthetic data (nothing is generated), read from real data."""
    from benchmark.runner import feature_dims

    if dataset == "synthetic":
        return synthetic.feature_dims(SyntheticConfig())
    _, splits = open_dataset(DataConfig(dataset=dataset, data_root=data_root or ""), results_dir, ("train",))
    train = splits["train"]
    return feature_dims(train, len(Vocabulary.build(train.captions)))


def parameter_shapes(variant: str, cfg: ModelConfig, dims: FeatureDims) -> dict[str, tuple[int, ...]]:
    """Every parameter of the built variant, by name."""
    model_cfg = ModelConfig(**{**vars(cfg), "variant": parse_variant(variant).name})
    return {name: tuple(p.shape) for name, p in build_model(model_cfg, dims).named_parameters()}


@dataclass(frozen=True)
class ParameterDifference:
    """How two variants' parameters differ: by name, count and the modules that hold the difference."""

    baseline: str
    variant: str
    axis: str
    baseline_count: int
    variant_count: int
    differing: tuple[str, ...]  # names on one side only, or with another shape

    @property
    def modules(self) -> list[str]:
        """The modules (two levels deep, e.g. ``relation.biases``) that hold every differing parameter."""
        return sorted({".".join(name.split(".")[:2]) for name in self.differing})


def parameter_difference(baseline: str, variant: str, axis: str, cfg: ModelConfig, dims: FeatureDims) -> ParameterDifference:
    ours, theirs = parameter_shapes(variant, cfg, dims), parameter_shapes(baseline, cfg, dims)
    differing = sorted(name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name))
    return ParameterDifference(baseline, variant, axis, _count(theirs), _count(ours), tuple(differing))


def _count(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for shape in shapes.values())


def grid_pairs(grid: str, cfg: ModelConfig, dims: FeatureDims) -> list[ParameterDifference]:
    """Every one-component pair of an ablation grid, with its parameter difference."""
    labels = [parse_variant(v).display for v in load_grid(grid).variants]
    return [parameter_difference(a, b, axis, cfg, dims) for a, b, axis in one_component_pairs(labels)]


def catalogue(details: bool, dataset: str, data_root: str | None, results_dir: Path) -> str:
    """One block per axis: token, description, source (and parameters with ``details``)."""
    dims = _dims(dataset, data_root, results_dir) if details else None
    model_cfg = ModelConfig()
    lines = ["A variant spec joins one token per axis with '+'; an axis left out takes its default (*).", ""]
    for axis, registry in AXES.items():
        lines.append(f"{axis}: {registry.summary}")
        for name in registry.names():
            component = registry.get(name)
            mark = "*" if name == registry.default else " "
            params = ""
            if dims is not None:
                params = f"  [{count_parameters(component.factory(model_cfg, dims)):,} params]"
            needs = f"  (needs {', '.join(sorted(component.requires))})" if component.requires else ""
            lines.append(f"  {mark} {name:14} {component.description} -- {component.source}{needs}{params}")
        lines.append("")
    if ALIASES:
        lines.append("aliases: " + ", ".join(f"{alias} = {spec}" for alias, spec in ALIASES.items()))
    if dims is not None:
        lines.append(f"parameter counts for {dataset} dims: {dims}, embed_dim {model_cfg.embed_dim}")
        lines += ["", "one-component pairs of the default ablation grid (dsrln): whole-model parameters, and where they differ"]
        for pair in grid_pairs("dsrln", model_cfg, dims):
            where = f"differ in {', '.join(pair.modules)}" if pair.differing else "the same parameters"
            lines.append(f"  {pair.baseline} -> {pair.variant} ({pair.axis}): {pair.baseline_count:,} -> {pair.variant_count:,} "
                         f"({pair.variant_count - pair.baseline_count:+,}); {where}")
    return "\n".join(lines).rstrip()
