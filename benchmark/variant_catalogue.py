"""``variants``: what the registry offers, per axis, with sources and optional parameter counts."""

from __future__ import annotations

from pathlib import Path

from benchmark.config import DataConfig, ModelConfig
from benchmark.data.datasets import open_dataset
from benchmark.data.vocab import Vocabulary
from variants import ALIASES, AXES, FeatureDims, count_parameters


def _dims(dataset: str, data_root: str | None, results_dir: Path) -> FeatureDims:
    from benchmark.runner import feature_dims

    _, splits = open_dataset(DataConfig(dataset=dataset, data_root=data_root or ""), results_dir, ("train",))
    train = splits["train"]
    return feature_dims(train, len(Vocabulary.build(train.captions)))


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
            lines.append(f"  {mark} {name:10} {component.description} -- {component.source}{needs}{params}")
        lines.append("")
    if ALIASES:
        lines.append("aliases: " + ", ".join(f"{alias} = {spec}" for alias, spec in ALIASES.items()))
    if dims is not None:
        lines.append(f"parameter counts for {dataset} dims: {dims}, embed_dim {model_cfg.embed_dim}")
    return "\n".join(lines).rstrip()
