"""accel.heap: freed memory stays in the process, so reallocating it faults no page in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from accel.heap import keep_freed_memory

#: Allocate, free and allocate again 16 MB; print the page faults of the second allocation.
REALLOC = r"""
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from accel.heap import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()
a = np.ones(4 << 20, np.int32); del a
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(4 << 20, np.int32); del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", REALLOC, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    assert keep_freed_memory()
    kept, plain = faults("keep"), faults("plain")
    assert kept < 64 and kept <= plain
