"""``none``: no relation encoder; regions stay independent (the control for any relation modelling)."""

from __future__ import annotations

from torch import nn

from variants._base import FeatureDims, Unchanged
from variants._registry import RELATION


@RELATION.register("none", description="no relation encoder: regions stay independent", source="control (VSE++-style pooling)")
def no_relation(cfg, dims: FeatureDims) -> nn.Module:
    return Unchanged()
