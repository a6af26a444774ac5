"""What a missing prerequisite does: a skip with its reason here, a failure under CI (which installs it)."""

import pytest
from conftest import require


def test_a_missing_prerequisite_skips_here_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget here"):
        require(None, "no widget here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no widget here.*under CI this is a failure"):
        require("", "no widget here")
    require("/usr/bin/widget", "never raised when the prerequisite is there")
