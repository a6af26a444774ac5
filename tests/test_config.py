"""The typed config: defaults, TOML, overrides and their errors."""

import pytest

from benchmark import config
from benchmark.errors import UserError


def test_saved_config_loads_back_unchanged(tmp_path):
    cfg = config.resolve(None, config.parse_overrides(["train.lr=1e-3", "train.lr_milestones=[3, 5]", "data.synthetic.noise=1"]))
    config.save_toml(cfg, tmp_path / "run.toml")
    assert config.resolve(tmp_path / "run.toml") == cfg
    assert cfg.train.lr == 1e-3 and cfg.train.lr_milestones == [3, 5] and cfg.data.synthetic.noise == 1.0


def test_later_layers_win(tmp_path):
    (tmp_path / "a.toml").write_text("seed = 3\n[train]\nepochs = 7\n")
    cfg = config.resolve(tmp_path / "a.toml", {"train": {"epochs": 2}})
    assert (cfg.seed, cfg.train.epochs) == (3, 2)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match="unknown config key 'train.lrr'. Did you mean 'train.lr'"):
        config.resolve(None, config.parse_overrides(["train.lrr=1"]))


@pytest.mark.parametrize("pair, message", [
    ("train.epochs=1.5", "must be int"),
    ("train.amp=yes", "must be true or false"),
    ("train.lr_milestones=3", "must be a list"),
    ("train=3", "is a section"),
    ("noequals", "is not key=value"),
])
def test_bad_overrides_are_one_line_errors(pair, message):
    with pytest.raises(UserError, match=message):
        config.resolve(None, config.parse_overrides([pair]))


def test_every_numeric_field_has_a_valid_range_and_its_default_lies_in_it():
    numeric = {key for key, value in config.flatten(config.RunConfig()).items()
               if not isinstance(value, bool) and isinstance(value, int | float | list) and key != "train.held_out_twins"}
    assert numeric == set(config.VALID)
    for key, value in config.flatten(config.RunConfig()).items():
        if key in config.VALID:
            assert all(config.in_interval(v, config.VALID[key]) for v in (value if isinstance(value, list) else [value])), key


@pytest.mark.parametrize("pair, message", [
    ("train.batch_size=-5", "train.batch_size must be in [2, inf); got -5"),
    ("train.batch_size=1", "train.batch_size must be in [2, inf); got 1"),
    ("train.lr=-1e-3", "train.lr must be in (0, inf); got -0.001"),
    ("train.lr=0", "train.lr must be in (0, inf); got 0.0"),
    ("train.lr=nan", "train.lr must be in (0, inf); got nan"),
    ("train.epochs=0", "train.epochs must be in [1, inf); got 0"),
    ("seed=-1", "seed must be in [0, 4294967295]; got -1"),
    ("train.lr_milestones=[3, 0]", "train.lr_milestones must be in [1, inf); got 0"),
    ("model.dropout=1", "model.dropout must be in [0, 1); got 1.0"),
    ("data.synthetic.entangle=1.5", "data.synthetic.entangle must be in [0, 1]; got 1.5"),
])
def test_out_of_range_values_are_one_line_errors(pair, message):
    with pytest.raises(UserError) as raised:
        config.resolve(None, config.parse_overrides([pair]))
    assert str(raised.value) == message


def test_bad_toml_file(tmp_path):
    (tmp_path / "bad.toml").write_text("seed = = 1")
    with pytest.raises(UserError, match="not valid TOML"):
        config.resolve(tmp_path / "bad.toml")
    with pytest.raises(UserError, match="does not exist"):
        config.resolve(tmp_path / "missing.toml")


def test_hash_ignores_where_things_go_but_not_what_is_computed():
    base = config.RunConfig()
    moved = config.resolve(None, {"experiment": "other", "data": {"data_root": "/x"}})
    assert config.config_hash(base) == config.config_hash(moved)
    assert config.config_hash(base) != config.config_hash(config.resolve(None, {"seed": 1}))


def test_bundled_presets_load_by_name():
    cfg = config.resolve("f30k")
    assert cfg.data.dataset == "f30k" and cfg.model.embed_dim == 1024 and cfg.train.lr_milestones == [15]
    assert config.resolve("coco").data.dataset == "coco"


def test_field_roles_give_the_hash_the_recipe_and_the_sweep_their_exclusions():
    assert config.UNHASHED == {"experiment", "log_checkpoint", "data.data_root", "device"}
    assert config.NOT_RECIPE == config.UNHASHED | {"seed", "model.variant"}
    assert config.NOT_TUNABLE == config.NOT_RECIPE | {"data.dataset", "model.bert_path"}


def test_the_variant_is_kept_canonical_however_the_config_is_built(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text('[model]\nvariant = "dsrln"\n')  # an alias, as older runs saved it
    built = [config.resolve(path), config.from_dict({"model": {"variant": "dsrln"}}),
             config.with_values(config.RunConfig(), {"model.variant": "gisa+hier+dif"})]
    assert [cfg.model.variant for cfg in built] == ["gisa+dif+hier"] * 3 and config.RunConfig().model.variant == "gisa+dif+hier"
    assert not config.differences(built[0], config.RunConfig())
    with pytest.raises(UserError, match="unknown variant token 'gsia'"):
        config.resolve(None, {"model": {"variant": "gsia"}})
