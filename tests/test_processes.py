"""Measuring processes: a command's peak RSS is its own, not its parent's, nor that of what ran before it."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import pytest

from benchmark.processes import peak_rss_mb, reset_peak_rss, signals_deferred

CHILD = """
import resource
from benchmark.processes import peak_rss_mb
print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def test_after_a_reset_the_peak_rss_is_what_came_after_it():
    """An ablation worker runs cell after cell: each run's peak must not carry an earlier cell's."""
    ballast = bytearray(400 << 20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    before = peak_rss_mb()
    del ballast
    assert peak_rss_mb() > before - 50, "the control: the peak outlives the memory"
    reset_peak_rss()
    assert peak_rss_mb() < before - 300


def test_a_small_child_of_a_large_process_reports_its_own_peak_rss():
    ballast = bytearray(400 << 20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page: 400 MB resident here
    assert peak_rss_mb() > 400
    own, inherited = map(float, subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split())
    assert inherited > 400, "the control: Linux's ru_maxrss carries the parent's peak over fork and exec"
    assert own < 200, own
    del ballast
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 > 400


def test_a_signal_during_a_deferred_block_is_delivered_when_the_block_ends():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("the write")  # not cut short
    assert finished == ["the write"]


def test_a_second_signal_during_a_deferred_block_is_acted_on_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the first")
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the second")
    assert reached == ["after the first"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler is restored"
