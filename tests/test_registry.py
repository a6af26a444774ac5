"""Variant specs and the component registry."""

import pytest

from benchmark.errors import UserError
from variants import ALIASES, parse_variant
from variants._registry import RELATION


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
