"""torchvision, importable beside a CPU build of torch (the ResNet backbone of grid extraction; transformers imports
it too when it is installed)."""

from __future__ import annotations

import sys
import types


def import_torchvision() -> types.ModuleType:
    """torchvision, also beside a CPU build of torch. PyPI's torchvision wheels carry compiled ops (nms, roi_align,
    image decoding) built against CUDA torch; beside the CPU build they do not load, and torchvision's import then
    fails registering their fake kernels ("operator torchvision::nms does not exist"). The ResNet and the transforms
    need none of those ops, so when they are missing that registration module is skipped."""
    try:
        import torchvision
        return torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        del sys.modules[name]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import torchvision
    return torchvision
