"""The payload's layout is read from the flow record's table (flowpipe.render.fields): both renderers
are made from it, so a field given another payload path in flowpipe.flow.SCHEMA is shown there by
the generated Python loop and by the compiled one alike, and a table the payload cannot show fails
loudly."""
from __future__ import annotations

from typing import Any

import orjson
import pytest

from flowpipe.flow import SCHEMA, FlushBatch, make_flow
from flowpipe.render import jsontext, msgpacktext, payload
from flowpipe.render.fields import PAYLOAD, layout_of

FLOW = make_flow(type="ipfix", exporter="192.0.2.1", src_ip=bytes([10, 0, 0, 1]), dst_ip=bytes([10, 0, 1, 1]),
                 src_port=40000, dst_port=443, in_if=3, out_if=4, bytes=1000, packets=10, sampling_rate=64)


def moved(**paths: str) -> list[Any]:
    """SCHEMA with these fields at these payload paths."""
    return [f._replace(payload=paths.get(f.name, f.payload)) for f in SCHEMA]


def test_the_layout_shows_every_payload_path_of_the_table_once() -> None:
    shown = sorted(SCHEMA[i].payload for m in PAYLOAD for i in m.fields)
    assert shown == sorted(f.payload for f in SCHEMA if f.payload)
    assert [m.name for m in PAYLOAD][:3] == ["flush_timestamp", "type", "sampling_rate"]


def test_a_table_the_payload_cannot_show_fails_at_import() -> None:
    with pytest.raises(ImportError, match="payload path source.port"):
        layout_of(moved(src_port=""))
    with pytest.raises(ImportError, match="no member shows"):
        layout_of(moved(tos="tos"))
    with pytest.raises(ImportError, match="sampling_rate is written as int, but field src_ip is address"):
        layout_of(moved(src_ip="sampling_rate", sampling_rate="source.ip"))


def test_a_field_moved_in_the_table_moves_in_both_renderers() -> None:
    """Ports and interfaces each given the other's payload path: the generated loop and the compiled
    loop (JSON and msgpack) show them there, and still agree byte for byte."""
    layout = layout_of(moved(src_port="destination.port", dst_port="source.port", in_if="egress.interface.index",
                             out_if="ingress.interface.index"))
    loop, _ = payload.compile_loop(layout)
    (obj,) = loop([list(FLOW)], 5000, "h", {}, None)
    assert obj["source"]["port"] == "443" and obj["destination"]["port"] == "40000"
    assert obj["ingress"]["interface"]["index"] == 4 and obj["egress"]["interface"]["index"] == 3
    if not jsontext.COMPILED:
        pytest.skip("the compiled renderer is not built here")
    batch = FlushBatch(5.0, [FLOW])
    try:
        jsontext.set_layout(layout)
        payload.clear_caches()
        text = jsontext.render_json_batch(batch, "h")[0]
        packed = msgpacktext.render_msgpack_joined(batch, "h")
    finally:
        jsontext.set_layout()
    assert text == orjson.dumps(obj)
    import msgpack  # noqa: PLC0415

    assert msgpack.unpackb(packed) == orjson.loads(text)
    assert jsontext.render_json_batch(batch, "h")[0] != text  # (back to the table's own layout)


@pytest.mark.skipif(not jsontext.COMPILED, reason="the compiled renderer is not built here")
@pytest.mark.parametrize(("members", "why"), [
    ((("colour", b'{"a":', b"\xa1a", (0,)),), "unknown format colour"),
    ((("endpoint", b'{"a":', b"\xa1a", (11, 17)),), "endpoint takes 4 fields"),
    ((("int", b'{"a":', b"\xa1a", (99,)),), "names field 99"),
    ((("int", b'{"' + b"a" * 60 + b'":', b"\xa1a", (3,)),), "key of"),
    ("short kept", "do not hold every field"),
    ((("int", b'{"a":', b"\xa1a", (11,)),), "format int cannot write field 11"),
    ((("extras", b'{"a":', b"\xa1a", (24,)), ("int", b',"b":', b"\xa1b", (3,))), "must be the last member"),
])
def test_the_compiled_loop_refuses_a_layout_it_cannot_write(members: tuple[Any, ...], why: str) -> None:
    from flowpipe.flow import KEPT, KEY, OWN_COLUMNS  # noqa: PLC0415

    try:
        kept = KEPT[:-1] if members == "short kept" else KEPT
        members = (("int", b'{"a":', b"\xa1a", (3,)),) if members == "short kept" else members
        with pytest.raises(ValueError, match=why):
            jsontext._jsonflows.layout(len(SCHEMA), KEY, kept, OWN_COLUMNS, [11, 12], [0, 1, 2, 24], members)
        with pytest.raises(RuntimeError, match="no payload layout"):
            jsontext.render_json_joined(FlushBatch(5.0, [FLOW]), "h")
    finally:
        jsontext.set_layout()
    assert orjson.loads(jsontext.render_json_batch(FlushBatch(5.0, [FLOW]), "h")[0])["source"]["port"] == "40000"


@pytest.mark.skipif(not jsontext.COMPILED, reason="the compiled renderer is not built here")
def test_a_short_layout_packs_as_msgpack_packs_its_objects() -> None:
    """Under 16 members a payload object is a msgpack fixmap, as ``msgpack.packb`` packs it; the
    flows the compiled loop hands back are rendered with the same layout."""
    import msgpack  # noqa: PLC0415

    short = tuple(m for m in PAYLOAD if m.name in ("flush_timestamp", "type", "source", "bytes", "additional_fields"))
    batch = FlushBatch(5.0, [FLOW, make_flow(exporter="192.0.2.9", src_ip=bytes(4), bytes=True, extras={"a": 1})])
    try:
        jsontext.set_layout(short)
        payload.clear_caches()
        packed = msgpacktext.render_msgpack_joined(batch, "h")
        texts = jsontext.render_json_batch(batch, "h")
    finally:
        jsontext.set_layout()
    loop, _ = payload.compile_loop(short)
    want = loop([list(f) for f in batch.flows], 5000, "h", {}, None)
    assert [orjson.loads(t) for t in texts] == want and len(want[0]) == 4
    assert packed == b"".join(msgpack.packb(o, use_bin_type=True) for o in want)
    assert packed[0] == 0x84  # (a fixmap of four)
