"""requirements.lock: parsed as pip writes it, compared with the installed packages, and complete."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from benchmark.lockfile import LOCK, lock_status, mismatches, read_pins

ROOT = Path(__file__).parents[1]


def test_pins_are_read_by_normalised_name_and_compared_with_what_is_installed(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"# a comment\n\nNumPy=={metadata.version('numpy')}\npytest==0.0.1  # too old\n"
                    "tomli_w==" + metadata.version("tomli-w") + "\n")
    assert read_pins(lock) == {"numpy": metadata.version("numpy"), "pytest": "0.0.1", "tomli-w": metadata.version("tomli-w")}
    assert mismatches(read_pins(lock)) == [f"pytest: locked 0.0.1, installed {metadata.version('pytest')}"]
    status = lock_status(lock)
    assert status["matches_lock"] == "false" and len(status["lock_digest"]) == 16
    lock.write_text(lock.read_text().replace("0.0.1", metadata.version("pytest")))
    assert lock_status(lock)["matches_lock"] == "true" and lock_status(lock)["lock_digest"] != status["lock_digest"]
    assert lock_status(tmp_path / "absent.lock") == {"lock_digest": "none", "matches_lock": "no lock", "lock_mismatches": []}


def test_the_lock_pins_every_dependency_of_the_project_and_its_extras_but_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    names = {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in wanted}
    pins = read_pins(LOCK)
    assert names - {"torch"} <= set(pins), f"run `make lock`: {sorted(names - {'torch'} - set(pins))} are not pinned"
    assert "torch" not in pins  # installed first, as torch==2.13.0: its build depends on the machine
