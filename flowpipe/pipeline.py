"""What the stages hand each other: datagram batches, flow batches, the bounded flow queue, and the
exporters the accumulator has seen (for exporter metadata).

Neutral ground between the stages: the listener, decoder and accumulator import these names from
here, never from one another. (A tick's worth of aggregated flows, :class:`flowpipe.flow.FlushBatch`,
lives with the flow tuple.)
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import attrs
import trio

if TYPE_CHECKING:  # only the annotations name them
    from flowpipe.decode.columns import Chunk
    from flowpipe.decode.rows import Rows

# One datagram as the listener hands it on: (payload, source address, source port, receive time).
Datagram = tuple[bytes, str, int, float]
# One exporter domain as the accumulator reports it to exporter metadata (through the service):
# (namespace, exporter address, flow type, last seen).
ExporterSeen = tuple[str, str, str, float]


class SequenceObs(NamedTuple):
    """One datagram's sequence information, for loss tracking at decode time.

    ``sequence`` is the header's sequence number and ``units`` what this datagram adds to it,
    counted the way the protocol counts: v5 flow records, v9 export packets (1), IPFIX data
    records, sFlow datagrams (1). ``domain`` is the v5 engine (type<<8|id), v9 source id,
    IPFIX observation domain or sFlow sub-agent id.
    """

    domain: int
    sequence: int
    units: int


# What one datagram says about its exporter's sequence: (namespace, exporter, flow type, obs, flows).
SequenceNote = tuple[str, str, str, SequenceObs, int]


@attrs.define(slots=True)
class FlowBatch:
    """The records of one or more datagrams, with their sequence notes, in arrival order.

    ``chunks``: the record sources (data sets and sFlow samples left for columnar decoding,
    :mod:`flowpipe.decode.columns`; flow tuples as :class:`flowpipe.decode.rows.Rows`), holding
    ``size`` records.
    """

    chunks: list[Chunk | Rows]
    sequences: list[SequenceNote]
    size: int = 0


class FlowQueue:
    """Decoders -> accumulator, bounded in flows (``aggregator.buffer_size``), not in messages.

    A decoder waits while the accumulator is ``max_flows`` behind; the listeners then drop and
    count datagrams at their own queue, so nothing blocks UDP reading. The accumulator calls
    :meth:`taken` for what it has aggregated.
    """

    def __init__(self, max_flows: int) -> None:
        self.max_flows = max_flows
        self.pending = 0
        self.send_channel, self.receive_channel = trio.open_memory_channel[FlowBatch](math.inf)
        self._space = trio.Event()

    async def put(self, send: trio.MemorySendChannel[FlowBatch], batch: FlowBatch) -> None:
        while self.pending >= self.max_flows:
            self._space = trio.Event() if self._space.is_set() else self._space
            await self._space.wait()
        self.pending += batch.size
        send.send_nowait(batch)

    def taken(self, n: int) -> None:
        self.pending -= n
        if self.pending < self.max_flows:
            self._space.set()
