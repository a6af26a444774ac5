"""An ablation grid as data: the variants to run and per-variant config overrides.

Bundled grids live in ``benchmark/configs/grids/<name>.toml``; ``--grid FILE`` reads any TOML
file of the same form (``variants = [...]`` and optional ``[overrides."<variant>"]`` tables of
dotted config keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark import config as configuration
from benchmark.config import PRESETS, RunConfig
from benchmark.errors import UserError
from variants import parse_variant

GRIDS = PRESETS / "grids"


@dataclass(frozen=True)
class Grid:
    name: str
    variants: list[str]  # canonical variant names, in the grid's order
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # canonical name -> {dotted key: value}


def load_grid(name_or_path: str) -> Grid:
    path, data = configuration.read_toml(name_or_path, "grid file",
                                         f"pass a TOML file or a bundled grid ({', '.join(configuration.bundled(GRIDS))})", GRIDS)
    unknown = set(data) - {"variants", "overrides"}
    if unknown or not isinstance(data.get("variants"), list) or not data["variants"]:
        raise UserError(f"grid file {path} must hold a non-empty `variants = [...]` list (and optional [overrides.\"V\"] tables)"
                        + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else ""))
    variants = [parse_variant(v).name for v in data["variants"]]
    if len(set(variants)) != len(variants):
        raise UserError(f"grid file {path} lists a variant twice: {', '.join(variants)}")
    overrides = {}
    for variant, values in data.get("overrides", {}).items():
        canonical = parse_variant(variant).name
        if canonical not in variants:
            raise UserError(f"grid file {path} has overrides for '{variant}', which is not in its variants")
        overrides[canonical] = configuration.flatten(values)
    return Grid(path.stem, variants, overrides)


def cell_configs(grid: Grid, base: RunConfig, seeds: list[int]) -> list[RunConfig]:
    """One resolved config per (variant, seed), variant-major; overrides are checked here."""
    configs = []
    for variant in grid.variants:
        for seed in seeds:
            values = grid.overrides.get(variant, {}) | {"model.variant": variant, "seed": seed}
            configs.append(configuration.with_values(base, values))
    return configs
