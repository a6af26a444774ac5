"""Variant specs and the component registry."""

import pytest

from benchmark.errors import UserError
from variants import ALIASES, parse_variant
from variants._registry import RELATION, SOURCE


def test_defaults_fill_axes_left_out():
    spec = parse_variant("sa")
    assert (spec.relation, spec.source, spec.alignment, spec.text) == ("sa", "region", "global", "bigru")
    assert parse_variant("sa+region+global+bigru") == spec and spec.name == "sa"


def test_unknown_token_lists_valid_tokens_and_the_closest_match():
    with pytest.raises(UserError, match="unknown variant token 'sx'.*Closest match: 'sa'.*Valid tokens: .*sa, .*region"):
        parse_variant("sx+region")


def test_two_components_on_one_axis_conflict(monkeypatch):
    monkeypatch.setattr(RELATION, "_components", dict(RELATION._components))
    RELATION.register("other", description="d", source="s")(lambda cfg, dims: None)
    with pytest.raises(UserError, match="names two relation components \\('sa' and 'other'\\)"):
        parse_variant("sa+other")


def test_aliases_expand(monkeypatch):
    monkeypatch.setitem(ALIASES, "paper", "sa+region")
    assert parse_variant("paper") == parse_variant("sa")


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="registered twice"):
        RELATION.register("sa", description="d", source="s")(lambda cfg, dims: None)


def test_a_source_without_regions_takes_no_relation_encoder():
    assert parse_variant("grid").name == "none+grid" and parse_variant("grid").relation == "none"
    assert parse_variant("gisa+dif").source == "dif"
    with pytest.raises(UserError) as refused:
        parse_variant("gisa+grid")
    assert str(refused.value) == ("variant 'gisa+grid': the 'grid' source uses no regions, so it takes no relation encoder; "
                                  "write 'none+grid'")


def test_the_error_messages_name_the_choices_exactly():
    with pytest.raises(UserError) as refused:
        parse_variant("gsa")
    assert "Closest match: 'gisa'. Valid tokens: gisa, none, sa, sa-pos, dif," in str(refused.value)
    with pytest.raises(UserError) as refused:
        parse_variant("qqq")
    assert "in 'qqq'. Valid tokens:" in str(refused.value)  # no closest match, no hint
    with pytest.raises(UserError) as refused:
        parse_variant("sa+gisa")
    assert str(refused.value).endswith("pick one of: gisa, none, sa, sa-pos")
    with pytest.raises(UserError) as refused:
        SOURCE.get("nope")
    assert str(refused.value) == "unknown source component 'nope'; choose one of: dif, dif-unmasked, grid, concat, concat-matched, region"
