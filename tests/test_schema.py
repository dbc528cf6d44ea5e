"""The flow record's one table (flowpipe.flow.SCHEMA): what is derived from it agrees with it, and
the renderers (the payload objects and the compiled JSON text alike) put each field where the table
says, and nothing the table does not name."""
from __future__ import annotations

from typing import Any

import orjson
import pytest

from flowpipe.aggregate.keys import KeyCodec
from flowpipe.flow import (
    FIELD_INDEX,
    KEPT,
    KEY,
    KEY_WIDTH,
    MERGED,
    SCHEMA,
    Flow,
    FlushBatch,
    make_flow,
)
from flowpipe.render import render_batch, render_json_batch

BASE = dict(type="netflow9", exporter="192.0.2.1", namespace="default", sampling_rate=10, direction=0,
            start=100, end=200, bytes=1000, packets=10, ether_type=0x0800, ip_protocol=6,
            src_ip=bytes([10, 0, 0, 1]), dst_ip=bytes([10, 0, 1, 1]), src_port=40000, dst_port=443,
            src_mac=0x0011223344AA, dst_mac=0x0011223344BB, src_mask=24, dst_mask=16, in_if=3, out_if=4,
            tcp_flags=0x02, next_hop=bytes([10, 0, 0, 254]), tos=0, extras={"vlan": 7})
# Another value for each field, one the payload shows differently.
OTHER = dict(type="ipfix", exporter="192.0.2.2", namespace="lab", sampling_rate=100, direction=1, start=101,
             end=201, bytes=1001, packets=11, ether_type=0x86DD, ip_protocol=17, src_ip=bytes([10, 0, 0, 2]),
             dst_ip=bytes([10, 0, 1, 2]), src_port=40001, dst_port=444, src_mac=0x0011223344CC,
             dst_mac=0x0011223344DD, src_mask=25, dst_mask=17, in_if=5, out_if=6, tcp_flags=0x12,
             next_hop=bytes([10, 0, 0, 253]), tos=8, extras={"vlan": 8})
NOT_A_FIELD = {"flush_timestamp", "host"}  # the flush's and the service's, not a flow's


def leaves(obj: Any, path: str = "") -> dict[str, Any]:
    """Every leaf value of a payload object by its dotted path (a list is a leaf)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, f"{path}.{k}" if path else k))
        return out
    return {path: obj}


def rendered(flow: tuple, how: str) -> dict[str, Any]:
    batch = FlushBatch(1.0, [flow])
    if how == "objects":
        return leaves(render_batch(batch, "h")[0])
    return leaves(orjson.loads(render_json_batch(batch, "h")[0]))


def test_every_field_has_one_role_and_the_key_is_whole() -> None:
    assert tuple(f.name for f in SCHEMA) == Flow._fields
    assert {f.role for f in SCHEMA} <= {"key", "kept", "sum", "min", "max", "or", "join"}
    assert sorted(SCHEMA[i].key for i in KEY) == list(range(len(KEY)))
    roles = [i for i in range(len(SCHEMA)) if i in KEY or i in KEPT or any(i in v for v in MERGED.values())]
    assert len(roles) == len(SCHEMA) - 1 and SCHEMA[FIELD_INDEX["extras"]].role == "join"
    assert all(SCHEMA[i].role == "key" for i in KEY_WIDTH)


def test_the_compact_key_takes_each_integer_at_its_width() -> None:
    """A value of the schema's width keys compactly; one past it keys the flow by its plain values
    (still one context, read back exactly)."""
    codec = KeyCodec()
    for i, w in KEY_WIDTH.items():
        top = make_flow(exporter="x", src_ip=bytes(4), dst_ip=bytes(4), **{SCHEMA[i].name: (1 << 8 * w) - 1})
        past = make_flow(exporter="x", src_ip=bytes(4), dst_ip=bytes(4), **{SCHEMA[i].name: 1 << 8 * w})
        k_top, k_past = codec.of_flow(top), codec.of_flow(past)
        assert len(k_top) == 4 + 2 + 8 + sum(KEY_WIDTH.values()) + 1
        assert k_past[:4] == b"\xff\xff\xff\xff"  # the plain layout
        assert codec.fields(k_top)[KEY.index(i)] == (1 << 8 * w) - 1
        assert codec.fields(k_past)[KEY.index(i)] == 1 << 8 * w


@pytest.mark.parametrize("how", ["objects", "json"])
def test_each_field_is_rendered_at_its_payload_path(how: str) -> None:
    base = rendered(make_flow(**BASE), how)
    named = {f.payload for f in SCHEMA if f.payload}
    for path in base:  # nothing the table does not name (additional fields: their object)
        assert path in NOT_A_FIELD or path in named or path.rsplit(".", 1)[0] in named, path
    for f in SCHEMA:
        changed = rendered(make_flow(**{**BASE, f.name: OTHER[f.name]}), how)
        moved = {p for p in base.keys() | changed.keys() if base.get(p) != changed.get(p)}
        if not f.payload:
            assert not moved, f"{f.name} is not sent, yet {moved} changed"
            continue
        prefix = f.payload + "."
        assert f.payload in moved or any(p.startswith(prefix) for p in moved), f"{f.name} not at {f.payload}"
        if f.name in ("src_ip", "dst_ip"):  # (an address also moves its network, the mask's text)
            moved.discard(f.payload.replace(".ip", ".mask"))
        assert all(p == f.payload or p.startswith(prefix) for p in moved), f"{f.name} also moved {moved}"


def test_a_flow_builder_fills_the_fields_it_names_and_nothing_else() -> None:
    """The decoders' per-record constructors name the fields they fill (no positions): the values
    land in those fields, constants in theirs, every other field is make_flow's zero/empty one."""
    from flowpipe.flow import Flow, builder, make_flow  # noqa: PLC0415

    build = builder("src_port", "bytes", "src_ip", type="sflow5", packets=1)
    f = Flow._make(build(443, 1500, b"\x0a\x00\x00\x01"))
    assert (f.src_port, f.bytes, f.src_ip, f.type, f.packets) == (443, 1500, b"\x0a\x00\x00\x01", "sflow5", 1)
    assert f._replace(src_port=0, bytes=0, src_ip=b"", type="netflow5", packets=0) == make_flow()
    for bad in (("nope",), ("bytes", "bytes")):
        with pytest.raises(TypeError):
            builder(*bad)
    with pytest.raises(TypeError):
        builder("bytes", bytes=1)
