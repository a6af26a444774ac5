"""An ablation grid as data: the variants to run, per-variant config overrides, and the claims to check.

Bundled grids live in ``benchmark/configs/grids/<name>.toml``; ``--grid FILE`` reads any TOML
file of the same form: ``variants = [...]``, optional ``[overrides."<variant>"]`` tables of dotted
config keys, and optional ``[[claims]]`` tables, each with ``text``, ``probe`` (a twin probe:
layout, binding, context, scene) and ``comparisons = [["baseline", "variant"], ...]`` (the variant
should be better; both must be in ``variants``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark import config as configuration
from benchmark.config import PRESETS, RunConfig
from benchmark.data.layout import PROBE_KINDS
from benchmark.errors import UserError
from variants import parse_variant

GRIDS = PRESETS / "grids"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, the comparisons that test it and the probe that isolates the claimed ability."""

    text: str
    probe: str  # a twin kind; on real data its caption-foil stand-in, if any
    comparisons: tuple[tuple[str, str], ...]  # (baseline, variant), canonical names: the variant should be better


@dataclass(frozen=True)
class Grid:
    name: str
    variants: list[str]  # canonical variant names, in the grid's order
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # canonical name -> {dotted key: value}
    claims: tuple[Claim, ...] = ()


def _claims(path, tables: Any, variants: list[str]) -> tuple[Claim, ...]:
    form = "[[claims]] tables with text, probe and comparisons = [[\"baseline\", \"variant\"], ...]"
    if not isinstance(tables, list):
        raise UserError(f"grid file {path}: claims must be {form}")
    claims = []
    for table in tables:
        if not isinstance(table, dict) or set(table) != {"text", "probe", "comparisons"}:
            raise UserError(f"grid file {path}: each claim needs exactly text, probe and comparisons ({form})")
        if table["probe"] not in PROBE_KINDS:
            raise UserError(f"grid file {path}: claim '{table['text']}' names probe '{table['probe']}'; choose one of: {', '.join(PROBE_KINDS)}")
        pairs = table["comparisons"]
        if not isinstance(pairs, list) or not pairs or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise UserError(f"grid file {path}: claim '{table['text']}' needs comparisons = [[\"baseline\", \"variant\"], ...]")
        canonical = tuple((parse_variant(a).name, parse_variant(b).name) for a, b in pairs)
        for name in {v for pair in canonical for v in pair} - set(variants):
            raise UserError(f"grid file {path}: claim '{table['text']}' compares '{name}', which is not in the grid's variants")
        claims.append(Claim(table["text"], table["probe"], canonical))
    return tuple(claims)


def load_grid(name_or_path: str) -> Grid:
    path, data = configuration.read_toml(name_or_path, "grid file",
                                         f"pass a TOML file or a bundled grid ({', '.join(configuration.bundled(GRIDS))})", GRIDS)
    unknown = set(data) - {"variants", "overrides", "claims"}
    if unknown or not isinstance(data.get("variants"), list) or not data["variants"]:
        raise UserError(f"grid file {path} must hold a non-empty `variants = [...]` list (and optional [overrides.\"V\"] "
                        "and [[claims]] tables)" + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else ""))
    variants = [parse_variant(v).name for v in data["variants"]]
    if len(set(variants)) != len(variants):
        raise UserError(f"grid file {path} lists a variant twice: {', '.join(variants)}")
    tables = data.get("overrides", {})
    if not isinstance(tables, dict) or not all(isinstance(values, dict) for values in tables.values()):
        raise UserError(f"grid file {path}: overrides must be tables of config keys per variant, e.g. "
                        "[overrides.\"gisa\"] with \"model.dropout\" = 0.0")
    overrides = {}
    for variant, values in tables.items():
        canonical = parse_variant(variant).name
        if canonical not in variants:
            raise UserError(f"grid file {path} has overrides for '{variant}', which is not in its variants")
        overrides[canonical] = configuration.flatten(values)
    return Grid(path.stem, variants, overrides, _claims(path, data.get("claims", []), variants))


def cell_configs(grid: Grid, base: RunConfig, seeds: list[int]) -> list[RunConfig]:
    """One resolved config per (variant, seed), variant-major; overrides are checked here."""
    configs = []
    for variant in grid.variants:
        for seed in seeds:
            values = grid.overrides.get(variant, {}) | {"model.variant": variant, "seed": seed}
            configs.append(configuration.with_values(base, values))
    return configs
