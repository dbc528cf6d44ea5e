"""Template registry, hold queue, snapshot/restore and the state file."""
from __future__ import annotations

import os
import struct
import tracemalloc
from collections.abc import Callable

import msgpack
import pytest
import trio

from flowpipe.config import DecoderConfig
from flowpipe.decode import state, template_decoder, templates
from flowpipe.decode.base import Source
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.decode.templates import HOLD_MAX_SETS, Held, HoldQueue, Registry, TemplateRecord, check
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp

SRC = Source("192.0.2.1", 2055)


def v9(*sets: bytes, source_id: int = 0) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), 1000, 1_700_000_000, 1, source_id) + b"".join(sets)


def fset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def tpl(tid: int, fields: list[tuple[int, int]]) -> bytes:
    return fset(0, struct.pack("!HH", tid, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields))


def rec(tid: int, *fields: tuple[int, int, int], options: bool = False, scope: int = 0) -> TemplateRecord:
    return TemplateRecord(tid, tuple(fields), scope, options)


@pytest.mark.parametrize("r, version, ok", [
    (rec(256, (0, 1, 4)), 9, True),
    (rec(255, (0, 1, 4)), 9, False),
    (rec(256), 10, False),
    (rec(256, (0, 1, 0)), 9, False),
    (rec(256, (0, 1, 0), (0, 2, 4), options=True, scope=1), 9, True),  # zero-length System scope (Cisco)
    (rec(256, (0, 1, 0), options=True, scope=1), 9, False),            # nothing but zero lengths
    (rec(256, (0, 1, 4), (0, 0, 0)), 9, True),                          # zero-length field ending a data template
    (rec(256, (0, 82, 65535)), 9, True),                                # variable length in v9 (H3C)
    (rec(256, (0, 82, 65535)), 10, True),
    (rec(256, *[(0, 1, 1)] * 513), 10, False),
])
def test_check(r: TemplateRecord, version: int, ok: bool) -> None:
    assert (check(r, version) is None) == ok


def test_registry_caps_and_expiry() -> None:
    reg = Registry(DecoderConfig(max_templates_per_exporter=2, max_exporters=1, template_timeout=10))
    stats = reg.stats
    dom = reg.domain_for_update("a", (1, 9, 0), 0.0)
    assert dom is not None
    assert [reg.add("a", dom, rec(t, (0, 1, 4)), 0.0) for t in (256, 257, 258)] == [None, None, "template_cap"]
    assert reg.add("a", dom, rec(256, (0, 2, 4)), 5.0) is None  # redefinition is never refused
    assert reg.domain_for_update("b", (1, 9, 0), 0.0) is None
    assert stats.templates == 2 and stats.refused_cap == 1
    assert stats.refused_exporters == 1
    assert reg.expire(12.0) == 1 and stats.templates == 1
    assert reg.expire(16.0) == 1 and reg.exporters == {}
    assert reg.domain_for_update("b", (1, 9, 0), 16.0) is not None  # room again


def test_sampling_state_expires_with_its_domain() -> None:
    reg = Registry(DecoderConfig(template_timeout=10))
    dom = reg.domain_for_update("a", (1, 9, 0), 0.0)
    assert dom is not None
    reg.learn(dom, None, 100, None, 0.0)
    reg.learn(dom, 7, 1000, None, 5.0)
    assert (dom.rate, dom.samplers) == (100, {7: 1000})
    reg.expire(14.0)
    assert reg.domain("a", (1, 9, 0)) is dom
    reg.expire(16.0)
    assert reg.domain("a", (1, 9, 0)) is None


def held(exporter: str, size: int, t: float = 0.0, counted: bool = True) -> Held:
    return Held(exporter, (1, 9, 0), "default", 0, 0, [(256, bytes(size))], t, counted)


def test_hold_queue_caps() -> None:
    q = HoldQueue(DecoderConfig(hold_max_per_exporter=3, hold_max_bytes=2000))
    stats = q.stats
    for _ in range(5):
        assert q.add(held("a", 10))
    assert q.held == 3 and q.take_dropped() == 2 and q.take_dropped() == 0
    assert not q.add(held("b", 5000))  # bigger than the whole budget: refused, nothing dropped
    for _ in range(4):
        q.add(held("c", 500))
    assert q.bytes <= 2000 and stats.dropped_full > 2
    assert stats.refused == 1


def test_hold_queue_expiry_counts_only_whole_datagrams() -> None:
    q = HoldQueue(DecoderConfig(hold_timeout=10))
    stats = q.stats
    q.add(held("a", 10, t=0.0))
    q.add(held("a", 10, t=0.0, counted=False))
    q.add(held("a", 10, t=5.0))
    assert q.expire(11.0) == 1 and q.held == 1
    assert stats.parts_dropped == 1 and stats.expired == 1
    assert q.expire(16.0) == 1 and q.entries == {} and q.by_domain == {} and q.by_exporter == {}
    assert stats.bytes == 0


def test_snapshot_restore_keeps_templates_and_sampling_rates() -> None:
    dec = TemplateDecoder(DecoderConfig())
    opts = fset(1, struct.pack("!HHH", 257, 4, 8) + struct.pack("!HHHHHH", 1, 4, 48, 2, 34, 4) + b"\0\0")
    dec.decode(v9(opts, fset(257, struct.pack("!IHI", 0, 3, 128) + b"\0\0"), tpl(256, [(48, 2), (1, 4)])), SRC)
    dec.decode(v9(tpl(256, [(2, 4)]), source_id=4), SRC)
    snap = msgpack.unpackb(msgpack.packb(dec.snapshot()), strict_map_key=False)
    fresh = TemplateDecoder(DecoderConfig())
    fresh.restore(snap)
    d = fresh.decode(v9(fset(256, struct.pack("!HI", 3, 99))), SRC)
    assert [(t[3], t[7]) for t in d.flows] == [(128, 99)]
    assert fresh.decode(v9(fset(256, struct.pack("!I", 5)), source_id=4), SRC).flows[0][8] == 5
    assert fresh.registry.stats.templates == 3


@pytest.mark.parametrize("junk", [None, 1, "x", {}, {"format": 1}, {"format": 1, "domains": "x"},
                                  {"format": 1, "domains": [[1, 2, 3]]},
                                  {"format": 1, "domains": [["a", 1, 9, 0, [[256, [[0, 1, "x"]], 0, False, 0]],
                                                             [], 0, 0, None, 0]]},
                                  {"format": 1, "domains": [["a", 1, 7, 0, [], [], 0, 0, None, 0]]},
                                  {"format": 2, "domains": []}])
def test_restore_of_malformed_snapshots_never_raises(junk: object) -> None:
    dec = TemplateDecoder(DecoderConfig())
    dec.restore(junk)  # type: ignore[arg-type]
    assert dec.registry.stats.templates == 0


def test_restore_respects_caps() -> None:
    big = TemplateDecoder(DecoderConfig())
    big.decode(v9(*[tpl(t, [(1, 4)]) for t in range(256, 300)]), SRC)
    small = TemplateDecoder(DecoderConfig(max_templates_per_exporter=10))
    small.restore(big.snapshot())
    assert small.registry.stats.templates == 10


def test_state_file_round_trip_is_atomic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dec = TemplateDecoder(DecoderConfig())
    dec.decode(v9(tpl(256, [(1, 4)])), SRC)
    path = str(tmp_path / "templates.state")
    state.save(path, dec.snapshot())
    state.save(path, dec.snapshot())  # replaces
    assert os.listdir(tmp_path) == ["templates.state"]
    loaded = state.load(path)
    assert loaded is not None
    fresh = TemplateDecoder(DecoderConfig())
    fresh.restore(loaded)
    assert len(fresh.decode(v9(fset(256, bytes(4))), SRC).flows) == 1


def test_state_file_problems_are_reported_not_raised(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "s")
    assert state.read(path)[0] is None and "no saved" in state.read(path)[1]
    state.save(path, {"format": 1, "domains": []})
    whole = open(path, "rb").read()
    cases = {"torn": whole[: len(whole) // 2], "empty": b"", "garbage": os.urandom(64),
             "foreign": msgpack.packb({"a": 1}), "crc": whole[:-1] + bytes([whole[-1] ^ 1])}
    for what, blob in cases.items():
        with open(path, "wb") as f:
            f.write(blob)
        snap, why = state.read(path)
        assert snap is None and why, what
        assert state.load(path) is None
    assert "template state not loaded" in caplog.text


# ---- the global template cap, shared layouts, the compiled-decoder cache ---------------------

def test_max_templates_caps_all_exporters_together_and_is_counted() -> None:
    dec = TemplateDecoder(DecoderConfig(max_templates=3))
    a, b = Source("192.0.2.1", 2055), Source("192.0.2.2", 2055)
    assert dec.decode(v9(tpl(256, [(1, 4)]), tpl(257, [(2, 4)])), a).skipped == []
    d = dec.decode(v9(tpl(256, [(1, 4)]), tpl(257, [(2, 4)])), b)
    assert d.skipped == ["template_cap"]
    assert dec.registry.stats.templates == 3 and dec.registry.stats.refused_total_cap == 1
    assert dec.registry.stats.refused_cap == 0  # not the per-exporter cap
    # refreshing or redefining a stored template is never refused by it
    assert dec.decode(v9(tpl(256, [(1, 4)]), tpl(257, [(1, 4)])), a).skipped == []
    assert dec.registry.stats.refused_total_cap == 1 and dec.registry.stats.templates == 3
    # the refused template's data waits (held), and gets decoded once there is room for it
    assert dec.decode(v9(fset(257, struct.pack("!I", 7))), b).held == 1
    dom = dec.registry.domain("192.0.2.1", (2055, 9, 0))
    assert dom is not None
    dec.registry.withdraw("192.0.2.1", dom, 257)
    d = dec.decode(v9(tpl(257, [(2, 4)])), b)
    assert d.skipped == [] and d.released == 1 and [f[8] for f in d.flows] == [7]


@pytest.mark.slow
async def test_the_total_cap_is_a_reason_of_flowpipe_templates_refused_total() -> None:
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9"}], decoder={"max_templates": 2})
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [v9(tpl(256, [(1, 4)]), tpl(257, [(1, 4)]))], "127.0.40.1")
            send_udp(port, [v9(tpl(256, [(1, 4)]), tpl(257, [(1, 4)]), tpl(258, [(2, 4)]))], "127.0.40.2")
            with trio.move_on_after(6):
                while metric(svc, "flowpipe_templates_refused_total", reason="total_cap") < 3:
                    await trio.sleep(0.1)
            assert metric(svc, "flowpipe_templates_refused_total", reason="total_cap") == 3
            assert metric(svc, "flowpipe_templates_refused_total", reason="per_exporter_cap") == 0
            assert metric(svc, "flowpipe_templates") == 2


def test_templates_with_the_same_fields_share_one_layout_and_decoder_until_the_last_goes() -> None:
    now = [0.0]
    dec = TemplateDecoder(DecoderConfig(template_timeout=10), clock=lambda: now[0])
    srcs = [Source(f"192.0.2.{i}", 2055) for i in (1, 2, 3)]
    for i, src in enumerate(srcs):
        dec.decode(v9(tpl(256 + i, [(1, 4), (2, 4)])), src)  # other ids, the same fields
    now[0] = 5.0
    dec.decode(v9(tpl(300, [(1, 4)])), srcs[0])
    reg = dec.registry
    assert len(reg.layouts) == 2 and reg.layout_fields == 3
    ts = [reg.domain(s.exporter, (2055, 9, 0)).templates[256 + i] for i, s in enumerate(srcs)]  # type: ignore[union-attr]
    assert ts[0].fields is ts[1].fields is ts[2].fields and ts[0].layout.refs == 3
    for i, src in enumerate(srcs):
        assert dec.decode(v9(fset(256 + i, struct.pack("!II", i, 1))), src).flows[0][7] == i
    assert ts[0].decoder is ts[1].decoder is ts[2].decoder is not None and len(dec._compiled) == 1
    reg.expire(12.0)  # the three shared ones go, the other stays
    assert list(reg.layouts) == [(9, ((0, 1, 4),))] and reg.layout_fields == 1
    reg.expire(16.0)
    assert reg.layouts == {} and reg.layout_fields == 0 and reg.fields_stored == 0 and reg.ntemplates == 0
    # a v9 and an IPFIX template with the same fields compile differently: two layouts
    dec.decode(v9(tpl(256, [(1, 4)])), srcs[0])
    ipfix_tpl = struct.pack("!HHIII", 10, 16 + 12, 1_700_000_000, 1, 0) + fset(2, struct.pack("!HHHH", 256, 1, 1, 4))
    dec.decode(ipfix_tpl, srcs[0])
    assert sorted(v for v, _ in reg.layouts) == [9, 10]


def test_the_compiled_decoder_cache_is_bounded_and_layouts_let_go_of_evicted_decoders(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(template_decoder, "COMPILED_MAX", 2)
    dec = TemplateDecoder(DecoderConfig())
    for i in range(3):
        dec.decode(v9(tpl(256 + i, [(1, 4)] + [(2, 4)] * i)), SRC)
    layouts = [dec.registry.domain(SRC.exporter, (2055, 9, 0)).templates[256 + i].layout  # type: ignore[union-attr]
               for i in range(3)]
    for i in range(3):
        assert len(dec.decode(v9(fset(256 + i, bytes(4 + 4 * i))), SRC).flows) == 1
    assert len(dec._compiled) == 2
    assert layouts[0].decoder is None and layouts[1].decoder is not None and layouts[2].decoder is not None
    d = dec.decode(v9(fset(256, struct.pack("!I", 9))), SRC)  # compiled again
    assert d.flows[0][7] == 9 and layouts[0].decoder is not None and layouts[1].decoder is None


def test_fields_of_distinct_layouts_are_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(templates, "MAX_LAYOUT_FIELDS", 3)
    dec = TemplateDecoder(DecoderConfig())
    d = dec.decode(v9(tpl(256, [(1, 4), (2, 4)]), tpl(257, [(1, 4), (8, 4)]), tpl(258, [(1, 4), (2, 4)])), SRC)
    assert d.skipped == ["template_cap"] and dec.registry.stats.refused_memory == 1
    assert sorted(dec.registry.domain(SRC.exporter, (2055, 9, 0)).templates) == [256, 258]  # type: ignore[union-attr]
    assert dec.registry.layout_fields == 2


# ---- held data: what it is counted at, its index by template id -----------------------------

def test_held_sets_are_kept_as_they_came() -> None:
    sets = [(256, b"ab"), (300, b""), (256, bytes(9))]
    h = Held("a", (1, 9, 0), "default", 0, 0, sets, 0.0, True)
    assert h.sets == sets and h.nsets == 3 and sorted(h.template_ids()) == [256, 300]
    assert h.size == (templates.HELD_ENTRY_COST + 3 * templates.HELD_SET_COST + 2 * templates.HELD_TID_COST + 11)
    data = v9(*[fset(t, b) for t, b in sets])
    spans, off = [], 20
    for t, b in sets:
        spans.append((t, off + 4, off + 4 + len(b)))
        off += 4 + len(b)
    g = Held.of_spans("a", (1, 9, 0), "default", 0, 0, data, spans, 0.0, True)
    assert g.blob == h.blob and g.size == h.size and list(g.spans()) == list(h.spans())


def _shape(name: str) -> tuple[int, Callable[[int], tuple[bytes, Source]]]:
    one, many = Source("192.0.2.1", 2055), (lambda i: Source(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 2055))
    return {
        "one exporter, 1 empty set": (3000, lambda i: (v9(fset(300, b"")), one)),
        "one exporter, 1 full set": (3000, lambda i: (v9(fset(300, bytes(1400))), one)),
        "one exporter, 1 set, distinct ids": (3000, lambda i: (v9(fset(300 + i, b"")), one)),
        "one exporter, domain per datagram": (3000, lambda i: (v9(fset(300, b""), source_id=i), one)),
        "exporter per datagram, 1 empty set": (3000, lambda i: (v9(fset(300, b"")), many(i))),
        "exporter per datagram, 256 sets, distinct ids": (
            100, lambda i: (v9(*[fset(300 + j, b"") for j in range(256)]), many(i))),
        "one exporter, 256 sets, one id": (100, lambda i: (v9(*[fset(300, b"x")] * 256), one)),
    }[name]


@pytest.mark.slow
@pytest.mark.parametrize("name, factor", [
    ("one exporter, 1 empty set", 1.0),
    ("one exporter, 1 full set", 1.0),
    ("one exporter, 1 set, distinct ids", 1.0),
    ("exporter per datagram, 256 sets, distinct ids", 1.0),
    ("one exporter, 256 sets, one id", 1.0),
    # the worst shape: tiny datagrams, each with its own index entries per exporter / domain
    ("one exporter, domain per datagram", 2.0),
    ("exporter per datagram, 1 empty set", 2.0),
])
def test_what_held_data_is_counted_at_covers_the_memory_it_takes(name: str, factor: float) -> None:
    n, make = _shape(name)
    dec = TemplateDecoder(DecoderConfig(hold_max_per_exporter=100_000, hold_max_bytes=1 << 40))
    grams = [make(i) for i in range(n)]
    tracemalloc.start()
    try:
        for data, src in grams:
            assert dec.decode(data, src).held == 1
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert used <= factor * dec.hold.bytes, f"{used / n:.0f} bytes a datagram, {dec.hold.bytes / n:.0f} counted"


def test_at_most_hold_max_sets_of_a_datagram_are_held() -> None:
    dec = TemplateDecoder(DecoderConfig())
    d = dec.decode(v9(*[fset(256, struct.pack("!I", i)) for i in range(HOLD_MAX_SETS + 5)]), SRC)
    assert d.held == 1 and d.skipped == ["no_template"] * 5
    assert [h.nsets for h in dec.hold.entries.values()] == [HOLD_MAX_SETS]
    d = dec.decode(v9(tpl(256, [(1, 4)])), SRC)
    assert d.released == 1 and [f[7] for f in d.flows] == list(range(HOLD_MAX_SETS))


def test_a_template_releases_only_the_data_waiting_for_it_in_arrival_order() -> None:
    dec = TemplateDecoder(DecoderConfig())

    def data(*pairs: tuple[int, int]) -> bytes:
        return v9(*[fset(t, struct.pack("!I", v)) for t, v in pairs])

    dec.decode(data((256, 1)), SRC)
    dec.decode(data((257, 2)), SRC)
    dec.decode(data((256, 3), (257, 4), (256, 5)), SRC)
    dec.decode(data((258, 6)), SRC)
    dec.decode(data((257, 7)), Source("192.0.2.9", 2055))  # another exporter: not its template
    assert dec.held == 5
    waiting = dec.hold.waiting_for(SRC.exporter, (2055, 9, 0), [257])
    assert [h.sets[0][1] for _, h in waiting] == [struct.pack("!I", 2), struct.pack("!I", 3)]
    d = dec.decode(v9(tpl(257, [(1, 4)])), SRC)
    assert [f[7] for f in d.flows] == [2, 4] and d.released == 2 and dec.held == 3
    # the partly decoded datagram waits for 256 only now, as an uncounted part
    assert dec.hold.waiting_for(SRC.exporter, (2055, 9, 0), [257]) == []
    d = dec.decode(v9(tpl(257, [(1, 4)])), SRC)  # a refresh: nothing waits for it
    assert d.flows == [] and d.released == 0
    d = dec.decode(v9(tpl(256, [(2, 4)])), SRC)
    assert [f[8] for f in d.flows] == [1, 3, 5] and d.released == 1
    assert dec.held == 2 and dec.hold.stats.released == 3
    entries = list(dec.hold.entries.values())
    assert [(h.exporter, h.sets) for h in entries] == [(SRC.exporter, [(258, struct.pack("!I", 6))]),
                                                       ("192.0.2.9", [(257, struct.pack("!I", 7))])]
    assert dec.hold.bytes == sum(h.size for h in entries)
    assert dec.expire(1e12) == 2 and dec.hold.by_domain == {} and dec.hold.by_exporter == {} and dec.hold.bytes == 0
