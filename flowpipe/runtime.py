"""Process tuning for a running pipeline: garbage-collector thresholds and the C allocator.

Both are process-wide, so they live here rather than in a stage. A stage that holds the hot
path enters :func:`tuned` for as long as it runs.

- **Young collections** (:func:`fewer_collections`): while the pipeline runs, the cyclic garbage
  collector looks at young objects every ``GC_YOUNG`` container allocations instead of every 700.
  Decoding allocates a tuple per flow and most of them are gone by the end of their batch, so
  they are never traversed (~8% of the CPU time of decoding + aggregating otherwise). Cycles are
  still collected, a little later. The previous threshold comes back when the last user leaves.
- **Allocator** (:func:`tune_allocator`): glibc's mmap threshold is fixed at ``MMAP_THRESHOLD``
  (1 MiB), so the accumulator's big column buffers stay mmap'd and go back to the system when
  freed, while a batch's numpy temporaries (up to a few hundred KB) come from the heap
  (see the function).
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Iterator

GC_YOUNG = 50_000  # container allocations between two young collections while the pipeline runs
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD = 1 << 20  # bytes: blocks this big or bigger are mmap'd (see tune_allocator)

_gc_users = 0
_gc_saved: tuple[int, ...] = ()
_allocator_tuned = False


def tune_allocator() -> None:
    """Keep big buffers out of glibc's heap (once per process; nothing elsewhere).

    The accumulator's columns are arrays of up to a few tens of MB grown by realloc. glibc raises its
    mmap threshold each time a big mmap'd block is freed, after which big blocks are carved from
    the heap, and the blocks left behind by growing columns stay in the process as free heap
    (~50 bytes per context at 1 M contexts). A fixed threshold keeps them mmap'd: growth is an
    mremap and freed ones go back to the system.

    The threshold is 1 MiB, not glibc's initial 128 KiB: at 128 KiB every numpy temporary of a
    batch bigger than that (the columns of a few thousand records, the index arrays of a byte
    gather) was an mmap, page faults on first touch and an munmap, each time. Decoding and
    aggregating the ``new`` load in process (300,000 records, batches of 1,024 datagrams, one
    run each): NetFlow v9 1,523 -> 1,098 ns a record, minor page faults 253,053 -> 131,036; sFlow
    2,654 -> 2,466 ns, 288,797 -> 234,556; peak RSS 150 -> 152 MiB and 273 -> 277 MiB.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6), or no mallopt
        pass


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Young collections every ``GC_YOUNG`` allocations inside (never more often than before);
    nests, and the threshold found on entry comes back when the outermost user leaves."""
    global _gc_users, _gc_saved
    if _gc_users == 0:
        _gc_saved = gc.get_threshold()
        if _gc_saved[0] and _gc_saved[0] < GC_YOUNG:
            gc.set_threshold(GC_YOUNG, *_gc_saved[1:])
    _gc_users += 1
    try:
        yield
    finally:
        _gc_users -= 1
        if _gc_users == 0 and gc.get_threshold()[0] == GC_YOUNG and _gc_saved[0] < GC_YOUNG:
            gc.set_threshold(*_gc_saved)


@contextlib.contextmanager
def tuned() -> Iterator[None]:
    """The process tuned for the pipeline's hot path: allocator (for good) and rarer young collections
    (while inside)."""
    tune_allocator()
    with fewer_collections():
        yield
