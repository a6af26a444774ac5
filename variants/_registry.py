"""The typed component registry and the variant-spec parser.

A variant is one component per axis; a spec names them joined by ``+`` (``sa+region``); an axis
a spec leaves out takes its default. Each component is a factory registered with a decorator in
its own module of this package (timm's ``@register_model``, lm-eval-harness's registry), so adding
a component is adding one file: the harness never imports a component by name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from benchmark.errors import UserError

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class Component:
    """A registered factory with what a user needs to choose it."""

    axis: str
    name: str
    factory: Factory
    description: str
    source: str  # the paper or method it comes from
    requires: frozenset[str] = field(default_factory=frozenset)  # inputs beyond regions: "boxes", "grid"
    check: Callable[..., None] | None = None  # check(model_cfg): a one-line UserError for a bad setting, cheaply
    uses_regions: bool = True  # False for a visual source that ignores the regions (then no relation encoder runs)


class Registry:
    """The components of one axis, by name."""

    def __init__(self, axis: str, summary: str, default: str):
        self.axis, self.summary, self.default = axis, summary, default
        self._components: dict[str, Component] = {}

    def register(self, name: str, *, description: str, source: str, requires: tuple[str, ...] = (),
                 check: Callable[..., None] | None = None, uses_regions: bool = True) -> Callable[[Factory], Factory]:
        """Decorator: ``@RELATION.register("sa", description=..., source=...)`` on a factory ``(model_cfg, dims) -> Module``.

        ``check(model_cfg)``, when given, validates the component's settings without building it;
        ``build_model`` runs it before the factory, and so does the harness's light ``check``.
        """

        def decorate(factory: Factory) -> Factory:
            if name in self._components:
                raise ValueError(f"{self.axis} component '{name}' is registered twice")
            self._components[name] = Component(self.axis, name, factory, description, source, frozenset(requires), check,
                                               uses_regions)
            return factory

        return decorate

    def __contains__(self, name: str) -> bool:
        return name in self._components

    def get(self, name: str) -> Component:
        if name not in self._components:
            raise UserError(f"unknown {self.axis} component '{name}'; choose one of: {', '.join(self.names())}")
        return self._components[name]

    def names(self) -> list[str]:
        return list(self._components)


RELATION = Registry("relation", "relation encoder over region features", default="sa")
SOURCE = Registry("source", "visual source: which visual features the image embedding uses", default="region")
ALIGNMENT = Registry("alignment", "how an image and a caption are scored", default="global")
TEXT = Registry("text", "caption encoder", default="bigru")
AXES = {registry.axis: registry for registry in (RELATION, SOURCE, ALIGNMENT, TEXT)}
NO_RELATION = "none"  # the relation component that leaves regions as they are
# Bump when a change to the components changes the numbers a config computes: a finished run of another
# revision is never reused for an ablation cell (its saved config may be identical).
REVISION = 2
ALIASES: dict[str, str] = {}  # e.g. a paper's name for a full combination of tokens


@dataclass(frozen=True)
class VariantSpec:
    """One component per axis."""

    relation: str
    source: str
    alignment: str
    text: str

    @property
    def name(self) -> str:
        """The canonical spec: every non-default token, in axis order (``sa`` if all are default)."""
        tokens = [getattr(self, axis) for axis, reg in AXES.items() if getattr(self, axis) != reg.default]
        return "+".join(tokens) or RELATION.default

    @property
    def display(self) -> str:
        """The name for tables: the relation encoder always, then every other non-default token
        (``sa+dif`` where ``name`` is ``dif``), as ablation tables in papers write it."""
        tokens = [self.relation] + [getattr(self, axis) for axis, reg in AXES.items()
                                    if axis != "relation" and getattr(self, axis) != reg.default]
        return "+".join(tokens)

    def components(self) -> list[Component]:
        return [AXES[axis].get(getattr(self, axis)) for axis in AXES]

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(c.requires for c in self.components()))


def all_tokens() -> list[str]:
    return [name for registry in AXES.values() for name in registry.names()] + list(ALIASES)


def parse_variant(spec: str) -> VariantSpec:
    """``'sa+region'`` -> VariantSpec; a clear one-line error for unknown or conflicting tokens."""
    tokens = [t.strip().lower() for t in spec.split("+")]
    tokens = [part for t in tokens for part in (ALIASES[t].split("+") if t in ALIASES else [t])]
    chosen: dict[str, str] = {}
    for token in tokens:
        axis = next((a for a, registry in AXES.items() if token in registry), None)
        if axis is None:
            close = difflib.get_close_matches(token, all_tokens(), n=1, cutoff=0.5)
            hint = f" Closest match: '{close[0]}'." if close else ""
            raise UserError(f"unknown variant token '{token}' in '{spec}'.{hint} Valid tokens: {', '.join(all_tokens())}")
        if axis in chosen and chosen[axis] != token:
            raise UserError(
                f"variant '{spec}' names two {axis} components ('{chosen[axis]}' and '{token}'); "
                f"pick one of: {', '.join(AXES[axis].names())}"
            )
        chosen[axis] = token
    source = SOURCE.get(chosen.get("source", SOURCE.default))
    if not source.uses_regions:  # nothing for a relation encoder to encode: it would be computed and thrown away
        if chosen.get("relation", NO_RELATION) != NO_RELATION:
            raise UserError(f"variant '{spec}': the '{source.name}' source uses no regions, so it takes no relation encoder; "
                            f"write '{NO_RELATION}+{source.name}'")
        chosen["relation"] = NO_RELATION
    return VariantSpec(**{axis: chosen.get(axis, registry.default) for axis, registry in AXES.items()})


def one_component_pairs(labels: list[str]) -> list[tuple[str, str, str]]:
    """(baseline, variant, axis) for measured variants that differ in exactly one component.

    The baseline holds the axis's default component (``sa``, ``region``, ``global``, ``bigru``);
    between two others, the one needing fewer inputs, then by name (``concat`` and ``grid`` before ``dif``).
    """
    specs = {}
    for label in labels:
        try:
            specs[label] = parse_variant(label)
        except UserError:  # a label with a recipe suffix, or an unregistered variant: no pair
            continue
    pairs = []
    for a, spec_a in specs.items():
        for b, spec_b in specs.items():
            differing = [axis for axis in AXES if getattr(spec_a, axis) != getattr(spec_b, axis)]
            if len(differing) != 1:
                continue
            (axis,) = differing
            if _baseline_rank(axis, getattr(spec_a, axis)) < _baseline_rank(axis, getattr(spec_b, axis)):
                pairs.append((a, b, axis))
    axis_order = list(AXES)
    return sorted(pairs, key=lambda p: (axis_order.index(p[2]), labels.index(p[0]), labels.index(p[1])))


def _baseline_rank(axis: str, name: str) -> tuple:
    registry = AXES[axis]
    return (name != registry.default, len(registry.get(name).requires), name)
