"""Ask glibc to keep freed memory mapped, for the whole process (rarely needed now).

nnfunc's steps reuse their own large arrays through workspaces (see
:mod:`nnfunc.workspace`), so they no longer page-fault fresh memory every
step whatever the C allocator does, and nothing needs tuning. What is left
for :func:`tune` is the memory nnfunc does not manage: your own per-step
arrays, or another library's. glibc's ``malloc`` serves blocks above its
mmap threshold with fresh ``mmap`` calls and hands freed memory at the top
of the heap back to the kernel once it exceeds its trim threshold; the next
allocation then faults every page back in and the kernel zeroes each one.

:func:`tune` raises both thresholds with ``mallopt``, so freed blocks stay in
the process and are reused. It changes the allocator of the whole process
(which is why nnfunc never calls it for you): memory freed after the peak is
kept for reuse instead of being returned to the system. It does nothing (and
returns ``False``) where the C library is not glibc.

>>> tune() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["tune"]

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems


def tune(trim_threshold: int = 1 << 30, mmap_threshold: int = _MMAP_THRESHOLD_MAX) -> bool:
    """Ask glibc to keep freed memory for reuse; ``True`` if it was applied.

    Args:
        trim_threshold: free bytes at the top of the heap kept before trimming.
        mmap_threshold: blocks at least this large are ``mmap``-ed (and
            unmapped on free); glibc caps it at 32 MiB on 64-bit systems.

    Raises:
        ValueError: for a negative threshold.
    """
    if trim_threshold < 0 or mmap_threshold < 0:
        raise ValueError("allocator.tune: thresholds must be >= 0; got "
                         f"{trim_threshold}, {mmap_threshold}")
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_trim = mallopt(_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1))
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, min(mmap_threshold, _MMAP_THRESHOLD_MAX))
    return bool(ok_trim and ok_mmap)
