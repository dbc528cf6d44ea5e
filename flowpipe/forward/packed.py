"""Batches held as their request body: what waits in memory while delivery catches up.

A flush of a million contexts renders flows faster than one sender posts them, so hundreds of
thousands can wait at once, ~600 bytes each as JSON text. Compressed into the body they will be
sent as (:func:`pack`, done by the renderer as soon as it has a batch), they take ~15 times less,
and the body is made once either way.
"""
from __future__ import annotations

import zlib
from typing import Any

import msgpack
import orjson

from flowpipe.forward.encode import Flow, encode_body, gzip_parts


class Packed:
    """``count`` flows held as the gzip request body made of them (:func:`encode.encode_body` in
    ``fmt``). Reads as a sequence only for its length; :meth:`unpack` gives the flows back as
    payload objects, for the paths that need them one by one (the spool)."""

    __slots__ = ("body", "count", "fmt")

    def __init__(self, body: bytes, count: int, fmt: str) -> None:
        self.body, self.count, self.fmt = body, count, fmt

    def __len__(self) -> int:
        return self.count

    def unpack(self) -> list[Flow]:
        data = zlib.decompress(self.body, 31)  # a gzip member
        flows: list[Any] = msgpack.unpackb(data, raw=False) if self.fmt == "msgpack" else orjson.loads(data)
        return flows


def pack(flows: list[Flow], fmt: str) -> Packed:
    """``flows`` as the gzip request body of ``fmt`` (TypeError/ValueError/OverflowError: a value the
    format cannot hold)."""
    return Packed(encode_body(flows, fmt, "gzip"), len(flows), fmt)


def pack_json(parts: list[bytes], count: int) -> Packed:
    """``count`` flows given as JSON texts already joined by commas, a few ``parts`` of them (what
    :func:`flowpipe.render.jsontext.render_json_joined` gives), as the gzip JSON request body: the
    same JSON array :func:`pack` makes of the flows' texts, compressed part by part."""
    pieces = [b"["]
    for k, part in enumerate(parts):
        pieces += (b",", part) if k else (part,)
    pieces.append(b"]")
    return Packed(gzip_parts(pieces), count, "json")


def pack_msgpack(parts: list[bytes], count: int) -> Packed:
    """``count`` flows given as msgpack maps end to end, a few ``parts`` of them (what
    :func:`flowpipe.render.msgpacktext.render_msgpack_joined` gives), as the gzip msgpack request body:
    the same msgpack array :func:`pack` makes of the flows' objects, compressed part by part."""
    return Packed(gzip_parts([array_header(count), *parts]), count, "msgpack")


def array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items (what ``msgpack.packb`` writes first)."""
    if n < 16:
        return bytes((0x90 | n,))
    return b"\xdc" + n.to_bytes(2, "big") if n < 1 << 16 else b"\xdd" + n.to_bytes(4, "big")
