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


def test_a_registered_component_keeps_everything_it_was_given():
    from variants._registry import Component, Registry

    registry = Registry("axis", "what it is", default="plain")
    assert (registry.axis, registry.summary, registry.default, registry.names()) == ("axis", "what it is", "plain", [])

    def factory(cfg, dims):
        return None

    def check(cfg):
        return None

    assert registry.register("fancy", description="d", source="s", requires=("grid", "boxes"), check=check,
                             uses_regions=False)(factory) is factory
    registry.register("plain", description="p", source="q")(factory)
    assert registry.get("fancy") == Component("axis", "fancy", factory, "d", "s", frozenset({"boxes", "grid"}), check, False)
    assert registry.get("plain") == Component("axis", "plain", factory, "p", "q", frozenset(), None, True)
    assert registry.names() == ["fancy", "plain"] and "plain" in registry and "other" not in registry


def test_one_component_pairs_put_the_simpler_component_first():
    from variants import one_component_pairs

    labels = ["gisa+dif", "sa", "gisa", "sa+dif", "gisa+concat", "gisa+dif+hier", "none+grid", "none",
              "gisa+dif (lr 1e-3)", "sa+bert", "gisa+dif-unmasked"]  # a label with a recipe suffix makes no pair
    assert one_component_pairs(labels) == [
        # relation: the default first, then by the inputs needed (none needs no boxes, gisa does)
        ("sa", "gisa", "relation"), ("sa", "none", "relation"), ("sa+dif", "gisa+dif", "relation"), ("none", "gisa", "relation"),
        # source: region first; concat and dif-unmasked need the grid, dif the grid and boxes; ties by name
        ("sa", "sa+dif", "source"), ("gisa", "gisa+dif", "source"), ("gisa", "gisa+concat", "source"),
        ("gisa", "gisa+dif-unmasked", "source"), ("gisa+concat", "gisa+dif", "source"),
        ("gisa+concat", "gisa+dif-unmasked", "source"), ("none", "none+grid", "source"),
        ("gisa+dif-unmasked", "gisa+dif", "source"),
        ("gisa+dif", "gisa+dif+hier", "alignment"), ("sa", "sa+bert", "text")]
    assert one_component_pairs(["sa", "gisa+dif"]) == []  # two components apart


def test_a_spec_lists_one_component_per_axis_and_the_inputs_they_need():
    spec = parse_variant("gisa+dif+hier")
    assert [(c.axis, c.name) for c in spec.components()] == [
        ("relation", "gisa"), ("source", "dif"), ("alignment", "hier"), ("text", "bigru")]
    assert spec.requires == {"boxes", "grid"} and parse_variant("sa").requires == frozenset()
