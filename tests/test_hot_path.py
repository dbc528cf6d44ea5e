"""The hot-path mechanisms around the stages: batch merging, flushing in parts, runtime tuning, listener."""
from __future__ import annotations

import gc
import time

import trio

from flowpipe import runtime
from flowpipe.aggregate import stage as agg_stage
from flowpipe.aggregate.stage import AccumulatorStage
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.rows import rows
from flowpipe.decode.stage import MERGE_DATAGRAMS, DecoderStage, FlowBatch, FlowQueue
from flowpipe.export import DefaultRecord, encode_v5
from flowpipe.flow import BYTES, SRC_PORT, FlushBatch, make_flow
from flowpipe.listen import Datagram, UdpListener
from flowpipe.metrics import Metrics

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def v5(seq: int, n: int = 2) -> bytes:
    recs = [DefaultRecord(A, B, bytes(4), 1, 2, 1, 100, 1000, 2000, 1000 + seq * 10 + k, 443, 0x10, 6, 0, 0, 0, 24,
                          24) for k in range(n)]
    return encode_v5(recs, 5000, int(time.time()), seq * n)


async def test_queued_listener_batches_are_decoded_together_never_past_a_listener_batch() -> None:
    queue = FlowQueue(10**9)
    stage = DecoderStage(ListenerConfig(flow_type="netflow5"), Metrics(),
                         decoder=DatagramDecoder("netflow5", DecoderConfig(), []), queue=queue)
    sizes: list[int] = []
    decode_batch = stage.decode_batch

    def spy(batch: list[Datagram]) -> FlowBatch:
        sizes.append(len(batch))
        return decode_batch(batch)

    stage.decode_batch = spy  # type: ignore[method-assign]
    send, receive = trio.open_memory_channel[list[Datagram]](1000)
    shapes = [3, 400, 800, 5, 1024, 1, 1]  # (MERGE_DATAGRAMS: listen.BATCH, 1,024)
    seq = 0
    for n in shapes:  # all queued before the stage runs: it finds them waiting
        send.send_nowait([(v5(seq + k), "192.0.2.1", 9999, time.time()) for k in range(n)])
        seq += n
    send.close()
    with trio.fail_after(10):
        await stage.run(receive, queue.send_channel)
    batches = [b async for b in queue.receive_channel]
    assert sizes == [403, 805, 1024, 2]  # merged while they fit in MERGE_DATAGRAMS; order kept
    assert max(sizes) <= MERGE_DATAGRAMS
    ports = [f[SRC_PORT] for b in batches for c in b.chunks for f in c.rows()]
    assert ports == [1000 + s * 10 + k for s in range(seq) for k in range(2)]


async def test_a_tick_in_parts_emits_what_a_tick_emits_and_lets_others_run() -> None:
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=True)
    flows = [make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=p, dst_port=p % 7, bytes=p, packets=1)
             for p in range(3 * agg_stage.FLUSH_PART + 5)]
    one, parts = (AccumulatorStage(cfg, Metrics(), queue=FlowQueue(10**9), max_sequence_keys=10) for _ in range(2))
    for s in (one, parts):
        s.acc.add(rows(flows), 0.0)
    ran = 0

    async def other() -> None:
        nonlocal ran
        while True:
            ran += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        start = ran
        got = await parts.tick_in_parts(1.0)
        assert ran - start >= 3  # the other task ran between the parts
        nursery.cancel_scope.cancel()
    assert got == one.tick(1.0)
    assert sorted(f[BYTES] for f in got) == sorted(f[BYTES] for f in flows)


async def test_young_collections_are_rarer_while_the_accumulator_runs_and_restored_after() -> None:
    before = gc.get_threshold()
    stage = AccumulatorStage(AggregatorConfig(flush_interval=10.0), Metrics(), queue=FlowQueue(10**9),
                             max_sequence_keys=10)
    flow_send, flow_receive = trio.open_memory_channel[FlowBatch](10)
    out_send, out_receive = trio.open_memory_channel[FlushBatch](10)
    seen = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stage.run, flow_receive, out_send)
        await trio.sleep(0.05)
        seen.append(gc.get_threshold())
        await flow_send.send(FlowBatch(rows([make_flow(exporter="x", src_ip=A, dst_ip=B, bytes=5, packets=1)]), [], 1))
        await flow_send.aclose()
        batches = [b async for b in out_receive]
    assert seen[0][0] == max(before[0], runtime.GC_YOUNG) or before[0] == 0
    assert gc.get_threshold() == before
    assert [f[BYTES] for b in batches for f in b.flows] == [5]
    runtime.tune_allocator()  # once per process; harmless again (and where there is no glibc)
    runtime.tune_allocator()


async def test_listener_hands_on_one_text_object_per_exporter() -> None:
    lst = UdpListener(ListenerConfig(flow_type="netflow9", bind_host="127.0.0.1"), Metrics())
    lst.cfg.port = 0
    lst.open()
    send, receive = trio.open_memory_channel[list[Datagram]](100)
    got: list[Datagram] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lst.run, send)
            with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as s:
                await s.bind(("127.0.0.1", 0))
                for k in range(5):
                    await s.sendto(b"\x00\x09" + bytes([k]) * 30, ("127.0.0.1", lst.cfg.port))
                    await trio.sleep(0.03)  # across several reads
            with trio.fail_after(5):
                while len(got) < 5:
                    got += await receive.receive()
            nursery.cancel_scope.cancel()
    finally:
        lst.close()
    assert [g[0][2] for g in got] == [0, 1, 2, 3, 4]
    assert got[0][1] == "127.0.0.1" and all(g[1] is got[0][1] for g in got)
    assert lst._host("::ffff:192.0.2.8") == "192.0.2.8" and lst._host("2001:db8::1") == "2001:db8::1"
