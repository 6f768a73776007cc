"""Keep freed heap memory in the process while layers run (glibc).

A layer on the golden back end allocates and frees tens of MB at a time (im2col blocks, block
sums, masks). glibc serves blocks that large with fresh ``mmap`` pages, or trims the heap when
they are freed, so the next layer's arrays fault every page in again: on
``benchmarks/bench_tlm.py``'s ResNet-18 20,000-50,000 page faults and 0.1-0.2 s of system time
a batch, against none for the float forward, whose allocator keeps its memory. Raising glibc's
mmap and trim thresholds keeps freed memory for reuse (the process keeps its peak heap, as
torch's and most caching allocators do).
"""

from __future__ import annotations

from functools import cache

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks up to this size (bytes) come from the heap, not fresh mmap pages (glibc's largest).
MMAP_THRESHOLD = 32 << 20
#: Free heap memory up to this size (bytes) is kept, not returned to the system.
TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3       # glibc's mallopt parameters


@cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds once for this process; False where the C library has no
    ``mallopt`` (not glibc: nothing changes) or refuses one of them."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):      # (Windows: no CDLL(None))
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
