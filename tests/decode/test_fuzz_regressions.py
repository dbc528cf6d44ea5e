"""Findings of the decoder fuzzing (tests/decode/test_fuzz_decoders.py, fuzz/), one reproducer each.

Each is marked xfail(strict=True) with what goes wrong: it fails today, and the day its owner
fixes it the test passes, strict xfail turns that into a failure, and the marker (and, for the
held-memory check, its name in fuzz.checks.KNOWN) comes off. Reproducers are built here from
their description rather than pasted as bytes, so they stay readable.
"""
from __future__ import annotations

import struct
import time
import tracemalloc

import pytest
import trio

from flowpipe.config import DecoderConfig, ListenerConfig
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.metrics import Metrics
from fuzz import checks
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp

SRC = Source("192.0.2.1", 50000, "default", 1_700_000_000.0)
MAX_DGRAM = 65507


def _v9(sets: list[bytes], source_id: int = 7) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), 1000, 1_700_000_000, 1, source_id) + b"".join(sets)


def _set(sid: int, body: bytes = b"") -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def empty_sets_datagram() -> bytes:
    """A full-size v9 datagram of 16,371 empty data sets for templates never sent (ids 256..)."""
    n = (MAX_DGRAM - 20) // 4
    return _v9([_set(256 + i) for i in range(n)])


@pytest.mark.slow
def test_held_data_memory_is_bounded_by_hold_max_bytes() -> None:
    cfg = DecoderConfig(hold_max_bytes=1024 * 1024)
    dec = TemplateDecoder(cfg)
    data = empty_sets_datagram()
    tracemalloc.start()
    try:
        for i in range(16):
            dec.decode(data, Source(f"192.0.2.{i + 1}", 50000))
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert dec.hold.bytes <= cfg.hold_max_bytes
    assert used <= 2 * cfg.hold_max_bytes, f"{used / 1e6:.0f} MB held for {dec.hold.bytes} bytes accounted"


@pytest.mark.slow
def test_a_small_template_datagram_is_fast_whatever_is_held() -> None:
    dec = TemplateDecoder(DecoderConfig())
    data = empty_sets_datagram()
    for _ in range(64):
        dec.decode(data, SRC)
    tpl = _v9([_set(0, struct.pack("!HHHH", 60000, 1, 4, 1))])
    dec.decode(tpl, SRC)  # (the first one also stores the template)
    t = time.perf_counter()
    dec.decode(tpl, SRC)
    elapsed = time.perf_counter() - t
    assert elapsed < checks.budget(len(tpl)), f"{elapsed:.2f} s for a {len(tpl)}-byte template refresh"


def test_one_listener_batch_of_worst_case_datagrams_stays_within_memory() -> None:
    """Found by fuzzing: 64 KB datagrams of 1-byte records decoded to ~17 MB of flows each, so one
    listener batch could reach GBs. Fixed: at most MAX_RECORDS_PER_DATAGRAM records per datagram."""
    dec = DatagramDecoder("netflow9", DecoderConfig(), [])
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(), decoder=dec, queue=FlowQueue(10_000))
    dec.decode(_v9([_set(0, struct.pack("!HHHH", 256, 1, 4, 1))]), SRC)
    data = _v9([_set(256, bytes(MAX_DGRAM - 24))])
    batch = [(data, "192.0.2.1", 50000, 1_700_000_000.0)] * 64  # a sixteenth of a full batch (listen.BATCH)
    tracemalloc.start()
    try:
        out = stage.decode_batch(batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n = out.size
    del out
    assert peak < 64 * 1024 * 1024, f"{n} flows, {peak / 1e6:.0f} MB for 16 datagrams ({len(data)} bytes each)"


def _v9_big_counters() -> tuple[bytes, bytes]:
    """Template 256: src, dst (IPv4), IN_BYTES as 8 bytes; data: two records of one flow, 2**64-1 bytes each."""
    tpl = _set(0, struct.pack("!HH", 256, 3) + struct.pack("!HHHHHH", 8, 4, 12, 4, 1, 8))
    rec = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + (2**64 - 1).to_bytes(8, "big")
    return _v9([tpl]), _v9([_set(256, rec + rec)])


async def test_counters_past_64_bits_do_not_stop_a_msgpack_forwarder() -> None:
    """Found by fuzzing: with msgpack, two records of 2**64-1 bytes of one flow used to end the service."""
    tpl, data = _v9_big_counters()
    with Backend() as be:
        async with running(make_config(be.url, [{"flow_type": "netflow9"}],
                                       forwarder={"format": "msgpack"})) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [tpl, data], "127.0.3.1")
            with trio.move_on_after(5):
                while metric(svc, "flowpipe_flows_flushed_total") < 1:
                    await trio.sleep(0.05)
            assert await be.wait_flows_async(1, 5)
            assert metric(svc, "flowpipe_stage_up", stage="forwarder") == 1
    # fixed: aggregated counters past 2**64 saturate in the payload (a uint64 intake cannot hold more)
    assert [f["bytes"] for f in be.flows] == [2**64 - 1]
