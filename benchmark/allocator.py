"""glibc's heap, told to keep freed memory for the next training step instead of handing it back to the kernel.

By default glibc returns the top of a heap to the kernel whenever more than its trim threshold is free there, and
serves blocks above a (self-adjusting, at most 32 MB) size straight from ``mmap``. A training step allocates and
frees the same tensors again and again, so every step paid for fresh zeroed pages: the default ``dsrln`` run took
14 million page faults and 23 s of system time (README, Performance). With both thresholds fixed at
``RETAINED_BYTES`` the freed blocks are reused. Allocation never changes arithmetic: the numbers are identical.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
RETAINED_BYTES = 256 << 20


def keep_freed_memory() -> bool:
    """Fix glibc's trim and mmap thresholds at ``RETAINED_BYTES`` for this process (threads included). Returns
    whether it took effect: False off glibc (macOS, musl), where the platform's allocator is left as it is."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # musl has a mallopt that does nothing and returns 0; glibc returns 1 for each accepted parameter
    return bool(mallopt(M_MMAP_THRESHOLD, RETAINED_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, RETAINED_BYTES))
