"""A sweep's search space as data: config keys mapped to distributions, checked before any trial.

The default space lives in ``benchmark/configs/space.toml``, one table per component; a
variant's space is ``[common]`` plus the tables of its components. A ``--space FILE`` replaces it
with the file's top-level keys. Entries look like ``"train.lr" = { float = [1e-4, 5e-3], log = true }``,
``{ int = [1, 3] }`` or ``{ choices = [64, 128] }``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark import config as configuration
from benchmark.config import PRESETS, RunConfig
from benchmark.errors import UserError
from variants import parse_variant

DEFAULT_SPACE = PRESETS / "space.toml"
FORM = "{ float = [low, high] }, { float = [low, high], log = true }, { int = [low, high] } or { choices = [...] }"

Space = dict[str, dict[str, Any]]


def default_space(variant: str) -> Space:
    """``[common]`` plus the tables of the variant's components, in axis order."""
    _, tables = configuration.read_toml(DEFAULT_SPACE, "default space", "reinstall itr-bench")
    space = dict(tables["common"])
    for component in parse_variant(variant).components():
        space |= tables.get(component.name, {})
    return space


def load_space(path: str | Path) -> Space:
    return configuration.read_toml(path, "search space file", "pass a TOML file of config keys and distributions")[1]


def check_space(space: Space, base: RunConfig) -> Space:
    """Validate every entry (key, form, bounds, value types); returns ``space`` unchanged."""
    if not space:
        raise UserError("the search space is empty; give at least one entry, e.g. \"train.lr\" = { float = [1e-4, 1e-3], log = true }")
    for key, entry in space.items():
        if key in configuration.NOT_TUNABLE:
            raise UserError(f"search space entry '{key}' names what a run is, not a hyperparameter; sweep one variant and dataset at a time")
        if not isinstance(entry, dict) or len(set(entry) & {"float", "int", "choices"}) != 1 or set(entry) - {"float", "int", "choices", "log"}:
            raise UserError(f"search space entry '{key}' must be {FORM}; got {entry!r}")
        if "choices" in entry:
            values = entry["choices"]
            if not isinstance(values, list) or not values:
                raise UserError(f"search space entry '{key}': choices must be a non-empty list; got {values!r}")
        else:
            kind = "float" if "float" in entry else "int"
            values = entry[kind]
            numbers = isinstance(values, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            if not (numbers and len(values) == 2 and values[0] < values[1]):
                raise UserError(f"search space entry '{key}': {kind} must be [low, high] with low < high; got {values!r}")
            if entry.get("log") and values[0] <= 0:
                raise UserError(f"search space entry '{key}': a log scale needs low > 0; got {values!r}")
        for value in values:
            configuration.with_values(base, {key: value})  # unknown keys and wrong types fail here
    return space


def suggest(trial, space: Space) -> dict[str, Any]:
    """Draw one value per entry from an Optuna trial; the names are the config keys."""
    values = {}
    for key, entry in space.items():
        if "choices" in entry:
            values[key] = trial.suggest_categorical(key, entry["choices"])
        elif "float" in entry:
            values[key] = trial.suggest_float(key, *entry["float"], log=bool(entry.get("log")))
        else:
            values[key] = trial.suggest_int(key, *entry["int"], log=bool(entry.get("log")))
    return values


def describe(space: Space) -> str:
    """One line per entry, for the start of a sweep."""
    width = max(map(len, space))
    lines = []
    for key, entry in space.items():
        if "choices" in entry:
            text = "one of " + ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in entry["choices"])
        else:
            kind = "float" if "float" in entry else "int"
            low, high = entry[kind]
            text = f"{kind} in [{low:g}, {high:g}]" + (", log scale" if entry.get("log") else "")
        lines.append(f"  {key:<{width}}  {text}")
    return "\n".join(lines)
