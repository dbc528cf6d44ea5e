"""Payload msgpack: the flows of a batch as ``msgpack.packb`` packs their objects, from the columns.

:func:`render_msgpack_joined` gives the inside of a msgpack array of the batch's payload objects
(each flow packed as ``msgpack.packb(object, use_bin_type=True)`` packs it, end to end), made by the
compiled loop of ``_jsonflows.c`` in its msgpack mode with no object per flow. Without the compiled
loop (``COMPILED`` False) the service packs payload objects instead (:func:`flowpipe.render.render_batch`).
"""
from __future__ import annotations

import functools

import msgpack

from flowpipe.flow import FlushBatch
from flowpipe.render.jsontext import COMPILED, _JsonHelpers, render_compiled

__all__ = ["COMPILED", "clear_caches", "render_msgpack_joined"]

_pack = functools.partial(msgpack.packb, use_bin_type=True)
_HELPERS = _JsonHelpers(_pack, packed=True)


def clear_caches() -> None:
    """Empty the msgpack pieces' caches (benchmarks, tests)."""
    _HELPERS.clear()


def render_msgpack_joined(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> bytes:
    """The batch's flows packed end to end: what ``msgpack.packb`` makes of a list of their payload
    objects, less the array header (:func:`flowpipe.forward.packed.array_header`). TypeError,
    ValueError or OverflowError for a batch with a value msgpack cannot hold. Only with the compiled
    loop."""
    out: bytes = render_compiled(batch, host, tags, _HELPERS, True, msgpack=True)
    return out
