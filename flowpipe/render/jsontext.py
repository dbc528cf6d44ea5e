"""Payload JSON text: each flow's object as the JSON text ``orjson.dumps`` makes of it.

The service sends JSON (HTTP bodies, JSON lines): it needs each flow's object only as JSON text.
``render_json_batch`` gives that text directly, byte for byte ``orjson.dumps`` of the
:func:`flowpipe.render.payload.render_batch` object, from the compiled loop in ``_jsonflows.c`` when
it was built (``pip install`` builds it where a C compiler is at hand), else from the objects.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import orjson

from flowpipe.flow import KEPT, KEY, OWN_COLUMNS, SCHEMA, FlushBatch
from flowpipe.render import payload
from flowpipe.render.fields import FORMATS, PAYLOAD, Member
from flowpipe.render.payload import (
    _FLAG_LISTS,
    _PROTO_TEXT,
    ETHER_TYPES,
    _address,
    _render_flows,
    ip_text,
    render_batch,
)

try:
    from flowpipe.render import _jsonflows  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - built without a C compiler
    _jsonflows = None
COMPILED = _jsonflows is not None  # which renderer runs (the tests read it)


def member_keys(name: str, first: bool) -> tuple[bytes, bytes]:
    """A payload member's key as the compiled loop writes it: JSON (``{"name":`` for the first, else
    ``,"name":``) and msgpack."""
    return (b"{" if first else b",") + orjson.dumps(name) + b":", msgpack.packb(name)


_LOOP = [_render_flows]  # the Python loop of the compiled loop's layout (for the flows it hands back)


def set_layout(layout: Sequence[Member] = PAYLOAD) -> None:
    """Give the compiled loop the columns' fields (:data:`flowpipe.flow.SCHEMA`) and the payload's
    members (``layout``; done when this module loads)."""
    _LOOP[0] = _render_flows if layout is PAYLOAD else payload.compile_loop(layout)[0]
    if _jsonflows is not None:
        _jsonflows.layout(len(SCHEMA), KEY, KEPT, OWN_COLUMNS,
                          [i for i, f in enumerate(SCHEMA) if f.type == "address"],
                          [i for i, f in enumerate(SCHEMA) if f.type in ("text", "extras")],
                          tuple((m.format, *member_keys(m.name, k == 0), m.fields) for k, m in enumerate(layout)))


set_layout()


class _JsonHelpers:
    """What the compiled loop asks of Python: JSON of strings and of the rarer values, bounded caches
    of them (``limit`` entries at most, emptied when full as by flowpipe.cache.bounded_put), and whole
    flows it does not write itself (``flow``). ``encode`` and ``packed`` (the members' msgpack keys)
    make them another encoding's pieces instead (msgpack: flowpipe.render.msgpacktext)."""

    def __init__(self, encode: Callable[[Any], bytes] = orjson.dumps, packed: bool = False) -> None:
        self.protos = tuple(encode(_PROTO_TEXT[n]) for n in range(256))
        self.flags = tuple(encode(names) for names in _FLAG_LISTS)
        k = next(k for k, m in enumerate(PAYLOAD) if m.format == "extras")  # (its texts carry the member's key)
        self.extras_key = member_keys(PAYLOAD[k].name, k == 0)[1 if packed else 0]
        self.strs: dict[str, bytes] = {}
        self.devices: dict[str, bytes] = {}
        self.exporters: dict[str, bytes] = {}
        self.ethers: dict[int, bytes] = {}
        self.next_hops: dict[bytes, bytes] = {}
        self.limit = payload.CACHE_LIMIT
        # of the call under way
        self.flow_ms, self.host = 0, ""
        self.hostnames: dict[bytes, str] = {}
        self.tags: dict[str, str] | None = None
        self.quote = encode

    def clear(self) -> None:
        for cache in (self.strs, self.devices, self.exporters, self.ethers, self.next_hops):
            cache.clear()

    def device(self, ns: str) -> bytes:
        return self.quote({FORMATS["device"][0]: ns})

    def exporter(self, exp: str) -> bytes:
        return self.quote({FORMATS["exporter"][0]: exp})

    def ether(self, ether: int) -> bytes:
        return self.quote(ETHER_TYPES.get(ether) or str(ether))

    def address(self, raw: bytes, bits: int) -> tuple[bytes, bytes]:
        text, _, mask = _address(raw, bits)
        return self.quote(text), self.quote(mask)

    def next_hop(self, raw: bytes) -> bytes:
        return self.quote({FORMATS["next_hop"][0]: ip_text(raw)})

    def extras(self, extras: dict[str, Any]) -> bytes:
        tags = self.tags
        return self.extras_key + self.quote({**tags, **extras} if tags else extras)

    def flow(self, flow: list[Any]) -> bytes:
        return self.quote(_LOOP[0]([flow], self.flow_ms, self.host, self.hostnames, self.tags)[0])


_HELPERS = _JsonHelpers()


def clear_caches() -> None:
    """Empty the JSON text's caches (benchmarks, tests)."""
    _HELPERS.clear()


def render_json_batch(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> list[bytes]:
    """:func:`render_batch` as JSON text: one ``bytes`` object per flow, what ``orjson.dumps`` makes
    of its payload object. A batch with a value JSON cannot hold (an integer past 64 bits...) is
    returned as payload objects instead, for the forwarder to count as unencodable as before."""
    try:
        return _render_json(batch, host, tags)  # type: ignore[return-value]
    except (TypeError, ValueError, OverflowError):
        return render_batch(batch, host, tags)  # type: ignore[return-value]


def render_json_joined(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> bytes:
    """:func:`render_json_batch`'s texts joined by commas (a JSON array's inside), made as one
    ``bytes`` with no object per flow; TypeError/ValueError/OverflowError for a batch with a value
    JSON cannot hold."""
    return _render_json(batch, host, tags, joined=True)  # type: ignore[return-value]


def _render_json(batch: FlushBatch, host: str, tags: dict[str, str] | None,
                 joined: bool = False) -> list[bytes] | bytes:
    flush_ms = int(batch.flush_time * 1000)
    if _jsonflows is None:
        texts = list(map(orjson.dumps, _render_flows(batch.flows, flush_ms, host, batch.hostnames, tags)))
        return b",".join(texts) if joined else texts
    return render_compiled(batch, host, tags, _HELPERS, joined)


def render_compiled(batch: FlushBatch, host: str, tags: dict[str, str] | None, h: _JsonHelpers, joined: bool,
                    msgpack: bool = False) -> Any:
    """The compiled loop over ``batch`` with helpers ``h`` (JSON's, or msgpack's with ``msgpack``)."""
    h.flow_ms, h.host, h.hostnames, h.tags = int(batch.flush_time * 1000), host, batch.hostnames, tags
    h.limit = payload.CACHE_LIMIT
    tags_only = h.extras_key + h.quote(tags) if tags else b""
    c = batch.columns
    key = [c.key[0], c.key[1], *map(_in_place, c.key[2:])]
    other = [*map(_in_place, (c.start, c.end, c.bytes, c.packets, c.flags)), c.extras]
    return _jsonflows.render(key, c.kept, other, int(batch.flush_time * 1000), h.quote(host), batch.hostnames or None,
                             tags_only, h, joined, msgpack)


def _in_place(col: Any) -> Any:
    """A column as the compiled loop reads it in place: a list as it is; an array C-contiguous, its
    integers as native int64 where that cast is exact (others are left to the loop to refuse)."""
    if type(col) is list:
        return col
    import numpy as np  # noqa: PLC0415 - arrays come only from the accumulator, which has loaded it

    if col.dtype.kind == "V":
        return np.ascontiguousarray(col)
    return np.ascontiguousarray(col, dtype=np.int64) if np.can_cast(col.dtype, np.int64) else col
