"""Process-level settings for fast CPU training.

glibc serves allocations above its mmap threshold (at most 32 MB) with fresh mmap'd pages and gives
them back on free, so every large activation tensor of a training step is page-faulted and zeroed
anew. On the small-config benchmark this made the largest matmul (10496 x 128 @ 128 x 1024) take 47 ms
instead of 31 ms. Serving them from the heap, and not trimming it, reuses the pages: the same memory
the step needs anyway stays mapped. Set HRM_NO_MALLOC_TUNING=1 to leave glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False


def tune_cpu_allocator() -> bool:
    """Keep large allocations on the glibc heap (Linux only). Returns whether it was applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("HRM_NO_MALLOC_TUNING"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    _done = ok
    return ok
