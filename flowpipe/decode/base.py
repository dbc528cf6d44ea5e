"""What every decoder takes and returns. Decoders are pure: bytes in, records out, no I/O."""
from __future__ import annotations

import struct
from typing import Any

import attrs

from flowpipe.pipeline import SequenceObs

__all__ = ["DecodeError", "Decoded", "Plain", "SequenceObs", "Source", "unpack_header"]

# A datagram of the columnar path's common case, decoded without a Decoded: (chunks, exporter, flow
# type, sequence observation, records); see DatagramDecoder.plain.
Plain = tuple[list[Any], str, str, SequenceObs, int]


class DecodeError(Exception):
    """A datagram (or a part of it) that cannot be decoded.

    ``reason`` is a short stable label used as the ``reason`` metric label
    (e.g. ``short``, ``bad_version``, ``bad_length``); the message says what was wrong.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


def unpack_header(data: bytes, header: struct.Struct, what: str) -> tuple[Any, ...]:
    """``header`` unpacked from the start of ``data``; DecodeError ``short`` when ``data``, a ``what``, is shorter."""
    if len(data) < header.size:
        raise DecodeError("short", f"{len(data)}-byte {what}, the header alone is {header.size}")
    return header.unpack_from(data)


@attrs.define(slots=True, frozen=True)
class Source:
    """Where and when a datagram came from, as the listener saw it."""

    exporter: str          # UDP source address as text ("192.0.2.1", "2001:db8::1")
    port: int = 0          # UDP source port (NetFlow v9/IPFIX template scope includes it)
    namespace: str = "default"
    received: float = 0.0  # time.time() at receipt


@attrs.define(slots=True)
class Decoded:
    """The outcome of decoding one datagram.

    ``flows`` are flow tuples (see :mod:`flowpipe.flow`; and ``chunks``, see below), including the
    flows of earlier held datagrams that this one released. ``held`` is 1 when this datagram is now waiting for a
    template; ``released`` counts earlier held datagrams this one fully decoded. ``skipped``
    lists reasons for parts (sets, samples, records) that were skipped while the rest decoded.
    """

    flow_type: str
    exporter: str
    flows: list[tuple] = attrs.field(factory=list)
    sequence: SequenceObs | None = None
    held: int = 0
    released: int = 0
    skipped: list[str] = attrs.field(factory=list)
    counters: list[object] = attrs.field(factory=list)  # sFlow counter records (see decode.sflow)
    # Data sets left for columnar decoding (flowpipe.decode.columns.Chunk); only when the decoder
    # was asked for them (the service), never for in-band identity.
    chunks: list[Any] = attrs.field(factory=list)
