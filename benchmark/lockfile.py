"""The committed ``requirements.lock``: every package of the tested environment, pinned, and whether this one matches.

``make lock`` writes it from a fresh venv on this platform (``pip freeze``, with torch left out: its CPU or
CUDA build is a property of the machine, installed first as ``torch==2.13.0``). Every run records the
lock's digest and whether the installed versions matched it (``environment.json``, and as tags).
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = LOCK) -> dict[str, str]:
    """``name==version`` lines (comments and blank lines skipped), by normalised name."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_normalised(name)] = version.split(";", 1)[0].strip()
    return pins


def mismatches(pins: dict[str, str]) -> list[str]:
    """``name: locked X, installed Y`` for every pinned package whose installed version differs."""
    out = []
    for name, version in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            out.append(f"{name}: locked {version}, installed {installed}")
    return out


def lock_status(path: Path = LOCK) -> dict[str, str | list[str]]:
    """The lock's digest and whether this environment matches it (``"no lock"`` outside a checkout)."""
    if not path.is_file():
        return {"lock_digest": "none", "matches_lock": "no lock", "lock_mismatches": []}
    differing = mismatches(read_pins(path))
    return {"lock_digest": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            "matches_lock": "false" if differing else "true", "lock_mismatches": differing}
