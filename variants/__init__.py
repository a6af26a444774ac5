"""The model registry: every component module in this package registers itself on import.

Adding a component is adding one module here that decorates a factory with the registry of its
axis (``RELATION``, ``SOURCE``, ``ALIGNMENT`` or ``TEXT``); nothing else needs an edit.
"""

import importlib
import pkgutil

from variants.registry import AXES, VariantSpec, parse_variant

_INFRASTRUCTURE = {"registry", "base", "model", "attention"}  # modules that register nothing
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

from variants.model import RetrievalModel, build_model, count_parameters  # noqa: E402

__all__ = ["AXES", "RetrievalModel", "VariantSpec", "build_model", "count_parameters", "parse_variant"]
