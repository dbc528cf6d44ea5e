"""Payload rendering follows the contract's flow object."""
from __future__ import annotations

import json
import random
import socket
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpipe import render
from flowpipe.flow import (
    BYTES,
    DIRECTION,
    DST_IP,
    DST_MAC,
    DST_MASK,
    DST_PORT,
    END,
    ETHER_TYPE,
    EXPORTER,
    EXTRAS,
    IN_IF,
    IP_PROTOCOL,
    NAMESPACE,
    NEXT_HOP,
    OUT_IF,
    PACKETS,
    ROLLED_UP,
    SAMPLING_RATE,
    SRC_IP,
    SRC_MAC,
    SRC_MASK,
    SRC_PORT,
    START,
    TCP_FLAGS,
    TYPE,
    FlushBatch,
    make_flow,
)
from flowpipe.render import ETHER_TYPES, PROTOCOLS, TCP_FLAG_NAMES, U64_MAX, jsontext, mask_text, payload, render_batch


def test_flow_object_has_the_contract_shape() -> None:
    f = list(make_flow(type="netflow9", exporter="192.0.2.1", sampling_rate=100, direction=1, start=10, end=20,
                       bytes=1500, packets=3, ip_protocol=6, src_ip=bytes([10, 0, 0, 1]),
                       dst_ip=bytes([10, 0, 0, 2]), src_port=443, dst_port=ROLLED_UP, src_mac=0x0011223344AA,
                       src_mask=24, in_if=1, out_if=2, tcp_flags=0x12, next_hop=bytes([10, 0, 0, 254]),
                       extras={"vlan": 12}))
    (o,) = render_batch(FlushBatch(1700000000.1234, [f], {bytes([10, 0, 0, 2]): "db-2.example.internal"}), "node-1")
    assert o == {
        "flush_timestamp": 1700000000123, "type": "netflow9", "sampling_rate": 100, "direction": "egress",
        "start": 10, "end": 20, "bytes": 1500, "packets": 3, "ether_type": "IPv4", "ip_protocol": "TCP",
        "device": {"namespace": "default"}, "exporter": {"ip": "192.0.2.1"},
        "source": {"ip": "10.0.0.1", "port": "443", "mac": "00:11:22:33:44:aa", "mask": "10.0.0.0/24"},
        "destination": {"ip": "10.0.0.2", "port": "*", "mac": "00:00:00:00:00:00", "mask": "0.0.0.0/0",
                        "reverse_dns_hostname": "db-2.example.internal"},
        "ingress": {"interface": {"index": 1}}, "egress": {"interface": {"index": 2}}, "host": "node-1",
        "tcp_flags": ["SYN", "ACK"], "next_hop": {"ip": "10.0.0.254"}, "additional_fields": {"vlan": 12}}
    json.dumps(o)


def test_ipv6_unknown_protocol_and_mapped_addresses() -> None:
    v6 = bytes.fromhex("20010db8000000000000000000000001")
    mapped = bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 7])
    (o,) = render_batch(FlushBatch(0, [list(make_flow(ether_type=0x86DD, ip_protocol=253, src_ip=v6, dst_ip=mapped,
                                                      src_mask=32))]), "h")
    assert o["ether_type"] == "IPv6" and o["ip_protocol"] == "253"
    assert o["source"] == {"ip": "2001:db8::1", "port": "0", "mac": "00:00:00:00:00:00", "mask": "2001:db8::/32"}
    assert o["destination"]["ip"] == "192.0.2.7"
    assert o["next_hop"] == {"ip": ""} and "tcp_flags" in o and o["tcp_flags"] == []
    assert "additional_fields" not in o


def test_mask_rendering_edge_cases() -> None:
    assert mask_text(bytes([130, 240, 103, 204]), 20) == "130.240.96.0/20"
    assert mask_text(b"", 8) == "/8"
    assert mask_text(bytes(4), 40) == "/40"


def test_counters_past_64_bits_saturate() -> None:
    (o,) = render_batch(FlushBatch(0, [list(make_flow(bytes=2**65, packets=3))]), "h")
    assert o["bytes"] == 2**64 - 1 and o["packets"] == 3


# ---- the optimized renderer against the algorithm it replaced ------------------------------------
# A verbatim copy (minus lru_cache) of the renderer's render() (then flowpipe/render.py) before the rendering caches:
# the reference every rendered flow must match exactly (keys, key order, values, types).

def _ref_ip_text(raw: bytes) -> str:
    n = len(raw)
    if n == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if n == 16:
        if raw[:12] == b"\x00" * 10 + b"\xff\xff":
            return socket.inet_ntop(socket.AF_INET, raw[12:])
        return socket.inet_ntop(socket.AF_INET6, raw)
    return "" if n == 0 else "?" + raw.hex()


def _ref_mask_text(raw: bytes, bits: int) -> str:
    width = len(raw) * 8
    if width not in (32, 128) or bits > width:
        return f"/{bits}"
    value = int.from_bytes(raw, "big") & (((1 << bits) - 1) << (width - bits))
    return f"{_ref_ip_text(value.to_bytes(width // 8, 'big'))}/{bits}"


def _ref_mac_text(value: int) -> str:
    h = f"{value & 0xFFFFFFFFFFFF:012x}"
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


def _ref_tcp_flag_names(bits: int) -> list[str]:
    return [name for bit, name in TCP_FLAG_NAMES if bits & bit]


def _ref_port_text(port: int) -> str:
    return "*" if port < 0 else str(port)


def _ref_render(flow: list[Any], flush_ms: int, host: str, hostnames: dict[bytes, str],
                tags: dict[str, str] | None = None) -> dict[str, Any]:
    src_ip, dst_ip = flow[SRC_IP], flow[DST_IP]
    src: dict[str, Any] = {"ip": _ref_ip_text(src_ip), "port": _ref_port_text(flow[SRC_PORT]),
                           "mac": _ref_mac_text(flow[SRC_MAC]), "mask": _ref_mask_text(src_ip, flow[SRC_MASK])}
    dst: dict[str, Any] = {"ip": _ref_ip_text(dst_ip), "port": _ref_port_text(flow[DST_PORT]),
                           "mac": _ref_mac_text(flow[DST_MAC]), "mask": _ref_mask_text(dst_ip, flow[DST_MASK])}
    if hostnames:
        name = hostnames.get(src_ip)
        if name:
            src["reverse_dns_hostname"] = name
        name = hostnames.get(dst_ip)
        if name:
            dst["reverse_dns_hostname"] = name
    proto, ether = flow[IP_PROTOCOL], flow[ETHER_TYPE]
    out: dict[str, Any] = {
        "flush_timestamp": flush_ms,
        "type": flow[TYPE],
        "sampling_rate": flow[SAMPLING_RATE],
        "direction": "egress" if flow[DIRECTION] == 1 else "ingress",
        "start": flow[START],
        "end": flow[END],
        "bytes": min(flow[BYTES], U64_MAX),
        "packets": min(flow[PACKETS], U64_MAX),
        "ether_type": ETHER_TYPES.get(ether) or str(ether),
        "ip_protocol": PROTOCOLS.get(proto) or str(proto),
        "device": {"namespace": flow[NAMESPACE]},
        "exporter": {"ip": flow[EXPORTER]},
        "source": src,
        "destination": dst,
        "ingress": {"interface": {"index": flow[IN_IF]}},
        "egress": {"interface": {"index": flow[OUT_IF]}},
        "host": host,
        "tcp_flags": list(_ref_tcp_flag_names(flow[TCP_FLAGS] & 0xFF)),
        "next_hop": {"ip": _ref_ip_text(flow[NEXT_HOP])},
    }
    if flow[EXTRAS]:
        out["additional_fields"] = {**tags, **flow[EXTRAS]} if tags else flow[EXTRAS]
    elif tags:
        out["additional_fields"] = dict(tags)
    return out


def _ref_render_batch(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    flush_ms = int(batch.flush_time * 1000)
    return [_ref_render(f, flush_ms, host, batch.hostnames, tags) for f in batch.flows]


V4 = bytes([10, 1, 2, 3])
V4B = bytes([192, 0, 2, 200])
V6 = bytes.fromhex("20010db8000000000000000000000001")
V6B = bytes.fromhex("fe800000000000000211223344556677")
MAPPED = bytes(10) + b"\xff\xff" + bytes([198, 51, 100, 9])
ADDRESSES = [V4, V4B, V6, V6B, MAPPED, b"", bytes(4), bytes(16), b"\x01\x02\x03\x04\x05"]
MASKS = [0, 1, 7, 8, 16, 24, 31, 32, 33, 48, 64, 96, 120, 127, 128, 129]


def _variety() -> list[list[Any]]:
    """Flows covering every rendering branch, then seeded random combinations of edge values."""
    flows = [list(make_flow(tcp_flags=bits, ip_protocol=bits, ether_type=bits)) for bits in range(0, 0x200, 7)]
    flows += [list(make_flow(src_ip=ip, dst_ip=ip, next_hop=ip, src_mask=m, dst_mask=m))
              for ip in ADDRESSES for m in MASKS]
    flows += [list(make_flow(src_ip=V4, src_mask=m, dst_ip=V4, dst_mask=32 - m)) for m in range(33)]
    rnd = random.Random(7)
    for i in range(600):
        flows.append(list(make_flow(
            type=rnd.choice(["netflow5", "netflow9", "ipfix", "sflow5"]),
            exporter=rnd.choice(["192.0.2.1", "192.0.2.2", "2001:db8::9", "edge-1", ""]),
            namespace=rnd.choice(["default", "dc1", ""]), sampling_rate=rnd.choice([0, 1, 512]),
            direction=rnd.choice([0, 1, 2]), start=rnd.randrange(2**31), end=rnd.randrange(2**31),
            bytes=rnd.choice([0, 1, U64_MAX - 1, U64_MAX, U64_MAX + 1, 2**70, rnd.randrange(2**40)]),
            packets=rnd.choice([0, 1, U64_MAX, U64_MAX + 1, 2**65, rnd.randrange(2**20)]),
            ether_type=rnd.choice([0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x1234, 0, 0xFFFF]),
            ip_protocol=rnd.choice([0, 1, 6, 17, 58, 132, 253, 255, 256, 300]),
            src_ip=rnd.choice(ADDRESSES), dst_ip=rnd.choice(ADDRESSES + [bytes([10, 9, i % 256, 1])]),
            src_port=rnd.choice([ROLLED_UP, 0, 53, 443, 65535, rnd.randrange(1024, 65536)]),
            dst_port=rnd.choice([ROLLED_UP, 0, 80, rnd.randrange(65536)]),
            src_mac=rnd.choice([0, 0x0011223344AA, 0xFFFFFFFFFFFF, 2**60 + 5, rnd.randrange(2**48)]),
            dst_mac=rnd.choice([0, 0x020000000001]),
            src_mask=rnd.choice(MASKS), dst_mask=rnd.choice(MASKS),
            in_if=rnd.choice([0, 1, 2, 2**32 - 1]), out_if=rnd.choice([0, 1, 3, 2**32 - 1]),
            tcp_flags=rnd.randrange(0x400), next_hop=rnd.choice(ADDRESSES), tos=rnd.randrange(256),
            extras=rnd.choice([None, {}, {"vlan": i % 5}, {"env": "override", "9.1234": "0102ff"}]))))
    return flows


HOSTNAMES = {V4: "a.example", V6: "six.example", MAPPED: "mapped.example", V4B: "", b"": "empty-address"}
TAG_CHOICES: list[dict[str, str] | None] = [None, {}, {"env": "prod", "site": "par1"}]


def _assert_identical(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert repr(g) == repr(w)  # keys, key order, values and their types, nested
    assert orjson.dumps(got) == orjson.dumps(want)
    assert msgpack.packb(got, use_bin_type=True) == msgpack.packb(want, use_bin_type=True)


@pytest.mark.slow
@pytest.mark.parametrize("tags", TAG_CHOICES)
@pytest.mark.parametrize("hostnames", [{}, HOSTNAMES])
def test_output_identical_to_the_reference(hostnames: dict[bytes, str], tags: dict[str, str] | None) -> None:
    flows = _variety()
    want = _ref_render_batch(FlushBatch(1700000000.1234, flows, hostnames), "node-1", tags)
    render.clear_caches()
    for _ in range(2):  # cold caches, then every piece from the caches
        got = render_batch(FlushBatch(1700000000.1234, flows, hostnames), "node-1", tags)
        _assert_identical(got, want)
    assert render.render(flows[-1], 1700000000123, "node-1", hostnames, tags) == want[-1]


def test_identical_when_caches_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(payload, "CACHE_LIMIT", 3)
    monkeypatch.setattr(payload, "ADDRESS_CACHE_LIMIT", 3)
    render.clear_caches()
    flows = _variety()
    got = render_batch(FlushBatch(5, flows, HOSTNAMES), "h", {"env": "prod"})
    _assert_identical(got, _ref_render_batch(FlushBatch(5, flows, HOSTNAMES), "h", {"env": "prod"}))
    assert all(len(c) <= 3 for c in payload._CACHES)


@pytest.mark.parametrize("which", ["compiled", "python"])
def test_json_text_identical_when_caches_overflow(which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled loop's caches take their bound from the renderer's CACHE_LIMIT too."""
    _json_renderer(which, monkeypatch)
    monkeypatch.setattr(payload, "CACHE_LIMIT", 3)
    render.clear_caches()
    flows = _variety()
    want = [orjson.dumps(o) for o in _ref_render_batch(FlushBatch(5, flows, HOSTNAMES), "h", {"env": "prod"})]
    assert render.render_json_batch(FlushBatch(5, flows, HOSTNAMES), "h", {"env": "prod"}) == want
    h = jsontext._HELPERS
    caches = (h.strs, h.devices, h.exporters, h.ethers, h.next_hops)
    assert all(len(c) <= 3 for c in caches) and (which == "python" or any(len(c) == 3 for c in caches))


def test_shared_sub_objects_serialize_to_each_flows_values() -> None:
    render.clear_caches()
    a = list(make_flow(exporter="192.0.2.1", src_ip=V4, dst_ip=V4B, src_port=1000, dst_port=443, src_mask=24,
                       in_if=1, out_if=2, tcp_flags=0x12, next_hop=V4B))
    b = list(make_flow(exporter="192.0.2.1", src_ip=V4, dst_ip=V4B, src_port=1001, dst_port=ROLLED_UP, src_mask=16,
                       in_if=2, out_if=1, tcp_flags=0x12, next_hop=V4B))
    tags = {"env": "prod"}
    first = render_batch(FlushBatch(1, [a], {V4B: "db.example"}), "h", tags)
    second = render_batch(FlushBatch(2, [b, a], {}), "h", tags)
    out = orjson.loads(orjson.dumps(first + second))
    assert [(f["source"]["port"], f["source"]["mask"]) for f in out] == [("1000", "10.1.2.0/24"),
                                                                         ("1001", "10.1.0.0/16"),
                                                                         ("1000", "10.1.2.0/24")]
    assert [f["destination"].get("reverse_dns_hostname") for f in out] == ["db.example", None, None]
    assert [f["destination"]["port"] for f in out] == ["443", "*", "443"]
    assert [(f["ingress"]["interface"]["index"], f["egress"]["interface"]["index"]) for f in out] == [
        (1, 2), (2, 1), (1, 2)]
    assert all(f["exporter"] == {"ip": "192.0.2.1"} and f["tcp_flags"] == ["SYN", "ACK"] for f in out)
    # the same objects, shared (they are only ever serialized)
    assert first[0]["exporter"] is second[0]["exporter"] is second[1]["exporter"]
    assert first[0]["ingress"] is second[0]["egress"] and first[0]["tcp_flags"] is second[0]["tcp_flags"]
    assert second[0]["additional_fields"] is second[1]["additional_fields"] == tags
    assert second[0]["additional_fields"] is not tags
    assert msgpack.unpackb(msgpack.packb(first + second)) == out


def test_ipv4_address_and_network_text_agree_with_inet_ntop_for_every_prefix() -> None:
    """The octet-table IPv4 rendering gives what ``inet_ntop`` gives, address and network, for every
    prefix length (0..32 and past it) on random and edge addresses."""
    rng = random.Random(7)
    addresses = [rng.randbytes(4) for _ in range(3000)] + [b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x80\0\0\1"]
    for raw in addresses:
        value = int.from_bytes(raw, "big")
        for bits in range(0, 34):
            text, got_bits, mask = payload._address(raw, bits)
            assert text == socket.inet_ntop(socket.AF_INET, raw) and got_bits == bits
            if bits > 32:
                assert mask == f"/{bits}"
                continue
            net = (value >> (32 - bits) << (32 - bits)) if bits else 0
            assert mask == f"{socket.inet_ntop(socket.AF_INET, net.to_bytes(4, 'big'))}/{bits}"


# ---- JSON text (render_json_batch): compiled loop and pure-Python fallback --------------------

RENDERERS = ["compiled", "python"]


def _json_renderer(which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if which == "compiled" and not render.COMPILED:
        pytest.skip("flowpipe.render._jsonflows was not built (no C compiler at install time)")
    if which == "python":
        monkeypatch.setattr(jsontext, "_jsonflows", None)


@pytest.mark.slow
@pytest.mark.parametrize("which", RENDERERS)
@pytest.mark.parametrize("tags", TAG_CHOICES)
@pytest.mark.parametrize("hostnames", [{}, HOSTNAMES])
def test_json_text_is_orjson_of_the_reference_objects(which: str, hostnames: dict[bytes, str],
                                                      tags: dict[str, str] | None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _json_renderer(which, monkeypatch)
    flows = _variety()
    want = [orjson.dumps(o) for o in _ref_render_batch(FlushBatch(1700000000.1234, flows, hostnames), "node-1", tags)]
    render.clear_caches()
    for _ in range(2):  # cold caches, then warm
        assert render.render_json_batch(FlushBatch(1700000000.1234, flows, hostnames), "node-1", tags) == want


texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(['a"b', "back\\slash", "\x00\x1f\n\t",
                                                                            "é✓", "\u2028", ""])
addresses = st.sampled_from(ADDRESSES) | st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16)
i64 = st.integers(-(2**63), 2**63 - 1)
json_flow = st.builds(
    lambda *v: list(make_flow(**dict(zip(
        ("type", "exporter", "namespace", "sampling_rate", "direction", "start", "end", "bytes", "packets",
         "ether_type", "ip_protocol", "src_ip", "dst_ip", "src_port", "dst_port", "src_mac", "dst_mac", "src_mask",
         "dst_mask", "in_if", "out_if", "tcp_flags", "next_hop", "extras"), v, strict=True)))),
    texts, texts, texts, st.integers(0, 2**32), st.integers(0, 2), i64, i64,
    st.integers(0, 2**70), st.integers(0, 2**66), st.integers(0, 0xFFFF), st.integers(0, 300), addresses, addresses,
    st.integers(-1, 65535), st.integers(-1, 2**32), st.integers(0, 2**64), st.integers(0, 2**48), st.integers(0, 140),
    st.integers(0, 140), st.integers(0, 2**32 - 1), i64, st.integers(0, 2**16), addresses,
    st.none() | st.dictionaries(texts, st.integers(-5, 2**40) | texts, max_size=3))


@pytest.mark.slow
@pytest.mark.parametrize("which", RENDERERS)
@given(flows=st.lists(json_flow, min_size=1, max_size=20), host=texts,
       names=st.dictionaries(addresses, texts, max_size=4),
       tags=st.none() | st.dictionaries(texts, texts, max_size=2))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_json_text_of_random_flows_is_orjson_of_their_objects(which: str, flows: list[list[Any]], host: str,
                                                              names: dict[bytes, str], tags: dict[str, str] | None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _json_renderer(which, monkeypatch)
    batch = FlushBatch(1700000000.5, flows, names)
    want = [orjson.dumps(o) for o in render_batch(batch, host, tags)]
    assert render.render_json_batch(batch, host, tags) == want
    # made as one text (gzip'd JSON bodies): the same texts, joined by commas
    assert jsontext.render_json_joined(batch, host, tags) == b",".join(want)


@pytest.mark.parametrize("which", RENDERERS)
def test_a_value_json_cannot_hold_leaves_the_batch_as_objects(which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start time past 64 bits cannot be JSON: the batch comes back as payload objects, which the
    forwarder counts as unencodable (forwarder/encode_error), as before JSON text existed."""
    _json_renderer(which, monkeypatch)
    flows = [list(make_flow(src_ip=V4, dst_ip=V4B)), list(make_flow(src_ip=V4, start=2**80))]
    got = render.render_json_batch(FlushBatch(1.0, flows), "h")
    assert got == render_batch(FlushBatch(1.0, flows), "h")
    with pytest.raises(TypeError):
        orjson.dumps(got)
    with pytest.raises((TypeError, ValueError, OverflowError)):  # joined: the caller takes the objects
        jsontext.render_json_joined(FlushBatch(1.0, flows), "h")


@pytest.mark.parametrize("which", RENDERERS)
@pytest.mark.parametrize("tags", TAG_CHOICES)
def test_shared_additional_fields_render_as_their_own(which: str, tags: dict[str, str] | None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One dict shared by many flows (as sFlow's AS numbers are), equal dicts that are distinct objects,
    and different ones: every flow's additional fields are its own, in each render call."""
    _json_renderer(which, monkeypatch)
    shared, twin, other = {"src_as": 64500, "dst_as": 15169}, {"src_as": 64500, "dst_as": 15169}, {"src_as": 1}
    flows = [list(make_flow(src_port=1000 + i, extras=[shared, twin, other, None, shared][i % 5])) for i in range(25)]
    for _ in range(2):
        got = [json.loads(t) for t in render.render_json_batch(FlushBatch(1700000000.5, flows, {}), "node-1", tags)]
        want = [{**(tags or {}), **f[EXTRAS]} if f[EXTRAS] else (dict(tags) if tags else None) for f in flows]
        assert [g.get("additional_fields") for g in got] == want
        shared = {"src_as": 7}  # a new call: what a dict said before does not stay
        for f in flows[::5]:
            f[EXTRAS] = shared


# ---- msgpack bodies from the columns (compiled loop, msgpack mode) ----------------------------------

msgpack_compiled = pytest.mark.skipif(not render.COMPILED, reason="flowpipe.render._jsonflows was not built")


def _packed_both(batch: FlushBatch, host: str, tags: dict[str, str] | None) -> tuple[Any, Any]:
    """(what msgpack.packb makes of the payload objects, the compiled msgpack array), or the exception each raised."""
    from flowpipe.forward.packed import array_header  # noqa: PLC0415
    from flowpipe.render.msgpacktext import render_msgpack_joined  # noqa: PLC0415

    def want() -> Any:
        return msgpack.packb(render_batch(batch, host, tags), use_bin_type=True)

    def got() -> Any:
        return array_header(len(batch)) + render_msgpack_joined(batch, host, tags)

    out = []
    for f in (want, got):
        try:
            out.append(f())
        except (TypeError, ValueError, OverflowError) as e:
            out.append(type(e))
    return out[0], out[1]


@msgpack_compiled
@pytest.mark.parametrize("tags", TAG_CHOICES)
@pytest.mark.parametrize("hostnames", [{}, HOSTNAMES])
def test_msgpack_from_the_columns_is_msgpack_of_the_objects(hostnames: dict[bytes, str],
                                                             tags: dict[str, str] | None) -> None:
    """Byte for byte what msgpack.packb makes of render_batch's objects: every value kind the payload
    has (IPv6, names, saturated counters, rolled-up ports, odd protocols, additional fields, tags)."""
    from flowpipe.render import msgpacktext  # noqa: PLC0415

    flows = _variety()
    msgpacktext.clear_caches()
    for _ in range(2):  # cold caches, then warm
        want, got = _packed_both(FlushBatch(1700000000.1234, flows, hostnames), "node-1", tags)
        assert isinstance(want, bytes) and got == want
    for n in (1, 15, 16, 70_000):  # array headers: fixarray, array16, array32
        many = [flows[0]] * n
        want, got = _packed_both(FlushBatch(1700000000.5, many, {}), "h", None)
        assert got == want


@msgpack_compiled
@pytest.mark.slow
@given(flows=st.lists(json_flow, min_size=1, max_size=20), host=texts,
       names=st.dictionaries(addresses, texts, max_size=4),
       tags=st.none() | st.dictionaries(texts, texts, max_size=2))
@settings(max_examples=200, deadline=None)
def test_msgpack_of_random_flows_is_msgpack_of_their_objects(flows: list[list[Any]], host: str,
                                                             names: dict[bytes, str],
                                                             tags: dict[str, str] | None) -> None:
    want, got = _packed_both(FlushBatch(1700000000.5, flows, names), host, tags)
    assert got == want  # (or both refused the batch with the same kind of error)
