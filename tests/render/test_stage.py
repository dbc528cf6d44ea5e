"""RenderStage.run: flushed batches in through a trio channel, payload batches of at most
``max_batch_flows`` out, every flow once and in order, as the render functions make them."""
from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio

from flowpipe.flow import START, FlushBatch, make_flow
from flowpipe.forward import Packed
from flowpipe.forward.config import ForwarderConfig
from flowpipe.metrics import Metrics
from flowpipe.render import hoist, render_batch, render_json_batch
from flowpipe.render.stage import STEP, RenderStage

TAGS = {"env": "prod"}


def flushes(*sizes: int) -> list[FlushBatch]:
    """Batches of distinct flows (source port = running number; some with extras, one name)."""
    out, n = [], 0
    for k, size in enumerate(sizes):
        flows = [make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, i >> 8 & 255, i & 255]),
                           dst_ip=b"\xc0\x00\x02\x07", src_port=i, dst_port=443, bytes=100 + i, packets=1,
                           ip_protocol=6, extras={"vlan": i % 7} if i % 5 == 0 else None)
                 for i in range(n, n + size)]
        out.append(FlushBatch(1_700_000_000.25 + k, flows, {b"\xc0\x00\x02\x07": "db.example"}))
        n += size
    return out


async def run_stage(stage: RenderStage, batches: list[FlushBatch]) -> list[list[Any]]:
    """Feed ``batches`` through the stage over real memory channels; every payload batch it sends."""
    in_send, in_receive = trio.open_memory_channel[FlushBatch](0)
    out_send, out_receive = trio.open_memory_channel[list[Any]](0)
    got: list[list[Any]] = []

    async def collect() -> None:
        async with out_receive:
            async for out in out_receive:  # ends when the stage closes its output
                got.append(out)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stage.run, in_receive, out_send)
        nursery.start_soon(collect)
        async with in_send:
            for b in batches:
                await in_send.send(b)
    return got


def stage(max_batch_flows: int, **fwd: Any) -> RenderStage:
    return RenderStage(ForwarderConfig(max_batch_flows=max_batch_flows, **fwd), Metrics(), host="node-1", tags=TAGS)


def json_of(batches: list[FlushBatch]) -> list[bytes]:
    return [orjson.dumps(o) for b in batches for o in render_batch(b, "node-1", TAGS)]


@pytest.mark.parametrize("max_batch_flows", [1, 999, 1000, 2000, 2500, 10_000])
async def test_batches_hold_at_most_max_batch_flows_and_every_flow_once(max_batch_flows: int) -> None:
    batches = flushes(4321, 0, 1, 2000, 6)
    got = await run_stage(stage(max_batch_flows), batches)
    assert got and all(0 < len(out) <= max_batch_flows for out in got)
    texts = [t for out in got for t in out]
    assert all(isinstance(t, bytes) for t in texts)
    assert texts == json_of(batches)  # the JSON text of render_batch's objects, each flow once, in order
    assert len({orjson.loads(t)["source"]["port"] for t in texts}) == sum(len(b) for b in batches)


async def test_a_batch_is_not_joined_with_the_next() -> None:
    """A flush's remainder goes on its own, before the next flush's flows."""
    batches = flushes(1500, 1500)
    got = await run_stage(stage(1000), batches)
    assert [len(out) for out in got] == [1000, 500, 1000, 500]


async def test_msgpack_bodies_get_payload_objects() -> None:
    batches = flushes(2500)
    got = await run_stage(stage(1000, url="http://127.0.0.1:9/", format="msgpack", compression="none"), batches)
    assert [len(out) for out in got] == [1000, 1000, 500]
    assert [o for out in got for o in out] == render_batch(batches[0], "node-1", TAGS)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_top_level_additional_fields(fmt: str) -> None:
    batches = flushes(30)
    got = await run_stage(stage(7, url="http://127.0.0.1:9/", format=fmt, additional_fields="top_level",
                                compression="none"), batches)
    want = [hoist(o) for o in render_batch(batches[0], "node-1", TAGS)]
    flat = [o for out in got for o in out]
    assert flat == ([orjson.dumps(o) for o in want] if fmt == "json" else want)
    assert all(len(out) <= 7 for out in got) and want[0]["env"] == "prod" and "additional_fields" not in want[0]


async def test_other_tasks_run_while_a_big_flush_is_rendered() -> None:
    """A checkpoint every STEP flows: a flush of 5 steps lets another task in at least 5 times."""
    ticks: list[int] = []
    done = trio.Event()

    async def other() -> None:
        while not done.is_set():
            ticks.append(1)
            await trio.lowlevel.checkpoint()

    in_send, in_receive = trio.open_memory_channel[FlushBatch](1)
    out_send, out_receive = trio.open_memory_channel[list[Any]](100)
    await in_send.send(flushes(5 * STEP)[0])
    await in_send.aclose()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        before = len(ticks)
        await stage(100 * STEP).run(in_receive, out_send)
        done.set()
    assert len(ticks) - before >= 5
    assert len(out_receive.receive_nowait()) == 5 * STEP


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_gzip_http_batches_leave_as_their_request_body(fmt: str) -> None:
    """With gzip'd HTTP bodies each batch leaves packed (what waits for delivery is ~15x smaller than
    JSON text): the body holds exactly the batch's payload objects, batches as without packing."""
    batches = flushes(2500)
    got = await run_stage(stage(1000, url="http://127.0.0.1:9/", format=fmt), batches)
    assert all(isinstance(out, Packed) for out in got)
    assert [len(out) for out in got] == [1000, 1000, 500]
    assert [o for out in got for o in out.unpack()] == render_batch(batches[0], "node-1", TAGS)
    text = b"".join(render_json_batch(batches[0], "node-1", TAGS))
    assert sum(len(out.body) for out in got) * 8 < len(text)  # gzip'd: far smaller than the JSON text


@pytest.mark.parametrize("max_batch_flows", [999, 2000, 2500])
async def test_gzip_json_bodies_are_made_from_joined_texts_in_exact_batches(max_batch_flows: int) -> None:
    """gzip'd JSON: each request body is made from a few joined texts, never a text per flow; the
    batches are those without packing (at most ``max_batch_flows``, a flush's remainder on its own)
    and hold every flow once, in order."""
    batches = flushes(4321, 0, 1, 2000, 6)
    packed = await run_stage(stage(max_batch_flows, url="http://127.0.0.1:9/"), batches)
    plain = await run_stage(stage(max_batch_flows), batches)
    assert [len(out) for out in packed] == [len(out) for out in plain]
    assert all(isinstance(out, Packed) for out in packed)
    assert [o for out in packed for o in out.unpack()] == [o for b in batches for o in render_batch(b, "node-1", TAGS)]


async def test_gzip_json_a_step_json_cannot_hold_goes_as_objects_the_rest_packed() -> None:
    """A flow JSON cannot hold (a start time past 64 bits) sends its step as payload objects, for the
    forwarder to count as unencodable; the flows before and after it still leave packed, none twice."""
    (batch,) = flushes(3 * STEP)
    flows = [list(f) for f in batch.flows]
    flows[STEP + 5][START] = 2**80
    got = await run_stage(stage(10 * STEP, url="http://127.0.0.1:9/"), [FlushBatch(batch.flush_time, flows,
                                                                                    batch.hostnames)])
    kinds = [type(out).__name__ for out in got]
    assert kinds == ["Packed", "list", "Packed"]
    assert [len(out) for out in got] == [STEP, STEP, STEP]
    assert got[1] == render_batch(FlushBatch(batch.flush_time, flows[STEP:2 * STEP], batch.hostnames), "node-1", TAGS)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_gzip_bodies_hold_every_flow_once_in_order(fmt: str) -> None:
    """gzip'd HTTP bodies (the renderer packs them): JSON texts or msgpack maps made straight from the
    columns where the compiled loop is built, in bodies of at most max_batch_flows that unpack to
    render_batch's objects, each flow once, in order."""
    batches = flushes(4321, 1, 2000)
    got = await run_stage(stage(1000, url="http://127.0.0.1:9/", format=fmt, compression="gzip"), batches)
    assert all(isinstance(out, Packed) and out.fmt == fmt for out in got)
    assert [len(out) for out in got] == [1000, 1000, 1000, 1000, 321, 1, 1000, 1000]
    flows = [f for out in got for f in out.unpack()]  # type: ignore[attr-defined]
    want = [o for b in batches for o in render_batch(b, "node-1", TAGS)]
    assert flows == orjson.loads(orjson.dumps(want))  # (what a backend reads: tuples as lists)
