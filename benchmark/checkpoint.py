"""Checkpoints as plain data: state dicts, a plain-dict config, the vocabulary and progress.

Everything loads with ``torch.load(..., weights_only=True)``: no pickled argparse objects.
Writes go to a temporary file that replaces the old one, so a kill mid-write loses nothing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import UserError


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``path`` whole or not at all: a failed write (a full disk) leaves the old file and no temporary."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    buffer = io.BytesIO()
    torch.save(payload, buffer)  # in memory first: torch's own file writer turns "disk full" into an opaque error
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buffer.getbuffer())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write checkpoint {path} ({exc.strerror}); free space or fix permissions, then --resume the run") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass results/runs/<run>/checkpoints/best.pt")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        raise UserError(f"{path} is not an itr-bench checkpoint ({type(exc).__name__}); pass a best.pt or last.pt") from None
    missing = {"model", "config", "vocab", "dims", "epoch"} - set(payload)
    if missing:
        raise UserError(f"{path} is not an itr-bench checkpoint (no {', '.join(sorted(missing))})")
    return payload


def load_weights(model: torch.nn.Module, payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Load a checkpoint's weights into the model its config builds; a mismatch is a one-line error."""
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UserError(f"{path} holds weights that do not fit the model its config builds "
                        f"({' '.join(str(exc).split())[:200]}); the file is damaged or from another version of itr-bench") from None
