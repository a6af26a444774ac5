"""The model registry: every component module in this package registers itself on import.

Adding a component is adding one module here that decorates a factory with the registry of its
axis (``RELATION``, ``SOURCE``, ``ALIGNMENT`` or ``TEXT``); nothing else needs an edit. As in timm,
infrastructure modules start with an underscore (``_registry``, ``_base``, ``_model``,
``_attention``) and register nothing; every other module is imported here so that it registers.
The harness imports only what this package exports.
"""

import importlib
import pkgutil

from variants._base import (
    FeatureDims,
    ImageBatch,
    ImageEmbedding,
    TextBatch,
    TextEmbedding,
    l2norm,
)
from variants._grid import alignment_graph, cell_boxes
from variants._registry import ALIASES, AXES, REVISION, VariantSpec, one_component_pairs, parse_variant

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

from variants._model import RetrievalModel, build_model, check, count_parameters  # noqa: E402
from variants._torchvision import import_torchvision  # noqa: E402

__all__ = ["ALIASES", "AXES", "REVISION", "FeatureDims", "ImageBatch", "ImageEmbedding", "RetrievalModel", "TextBatch", "TextEmbedding",
           "VariantSpec", "alignment_graph", "build_model", "cell_boxes", "check", "count_parameters", "import_torchvision", "l2norm",
           "one_component_pairs", "parse_variant"]
