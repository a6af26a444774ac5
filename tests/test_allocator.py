"""The heap keeps freed memory for the next step: a step's large temporaries come from the heap and stay there,
instead of being mapped and unmapped (and their pages faulted in afresh) every step."""

from __future__ import annotations

import subprocess
import sys

import pytest

LARGE_MB = 100  # above glibc's largest self-adjusted mmap threshold (32 MB), below RETAINED_BYTES

CHILD = f"""
import ctypes, sys, torch
from benchmark import allocator

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
if sys.argv[1] == "keep":
    assert allocator.keep_freed_memory()
before = mallinfo2()
large = torch.ones({LARGE_MB} << 18)
alive = mallinfo2()
del large
freed = mallinfo2()
mb = lambda n: n / 2 ** 20
print(mb(alive.hblkhd - before.hblkhd), mb(freed.arena - before.arena))
"""


def mapped_and_kept_mb(mode: str) -> tuple[float, float]:
    """MB of the large tensor served by mmap while alive, and MB of heap still held after it is freed."""
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout
    mapped, kept = map(float, out.split())
    return mapped, kept


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt; other allocators are left alone")
def test_a_large_temporary_comes_from_the_heap_and_stays_there_for_the_next_step():
    mapped, kept = mapped_and_kept_mb("default")
    assert mapped >= LARGE_MB and kept < LARGE_MB, "the control: by default glibc maps it and unmaps it on free"
    mapped, kept = mapped_and_kept_mb("keep")
    assert mapped < 1 and kept >= LARGE_MB
