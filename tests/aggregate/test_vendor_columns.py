"""Vendor rules on the columnar path (flowpipe.decode.derived): Cisco ASA NSEL events counted once per
connection and reverse biflow counters make their flows as columns, and those are exactly the flows
the per-record rules make: datagram by datagram in the same order, with the same connection state
and outcome counts, and flush after flush once aggregated."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig, MappingConfig
from flowpipe.decode.base import Source
from flowpipe.decode.columns import KEY_SLOTS, Columns
from flowpipe.decode.derived import VendorChunk
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.export import Exporter, Template
from flowpipe.flow import BYTES, END, EXTRAS, PACKETS, SRC_IP, SRC_PORT, START, TCP_FLAGS, kept_fields
from tests.support import captures
from tests.support.equivalence import T0, aggregate_both
from tests.support.equivalence import same_flushes as _same

# An NSEL template with 8-byte directional counters, TCP flags, MACs and masks (all swapped in a
# responder's flow), absolute millisecond times.
NSEL_WIDE = Template([(148, 4), (8, 4), (7, 2), (12, 4), (11, 2), (4, 1), (10, 2), (14, 2), (233, 1), (33002, 2),
                      (231, 8), (232, 8), (298, 8), (299, 8), (6, 1), (56, 6), (80, 6), (9, 1), (13, 1),
                      (152, 8), (153, 8)], template_id=400)
# The same without packet counters nor an extended event; bytes in IE 1 as well (ignored: 231/232 win).
NSEL_BYTES = Template([(148, 4), (8, 4), (7, 2), (12, 4), (11, 2), (4, 1), (10, 2), (14, 2), (233, 1),
                       (231, 4), (232, 4), (1, 4), (152, 8), (153, 8)], template_id=401)
# A biflow (RFC 5103) with interfaces, MACs and masks, and 8-byte counters both ways.
BIFLOW_WIDE = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (10, 2), (14, 2), (56, 6), (80, 6), (9, 1),
                        (13, 1), (1, 8), (2, 8), (6, 1), (1, 8, 29305), (2, 8, 29305), (6, 1, 29305), (152, 8),
                        (153, 8)], template_id=402)
# Its input interface without an output one: a reverse flow's interfaces cannot be read from columns.
BIFLOW_ONE_IF = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (10, 2), (1, 8), (2, 8), (1, 8, 29305),
                          (2, 8, 29305), (152, 8), (153, 8)], template_id=403)
EVENTS = (1, 1, 2, 2, 2, 5, 5, 5, 5, 3, 4, 0, 9)  # create, teardown, update weighted; deny, alert, ignore, 9
WIDE = (0, 0, 1, 1500, 2**40, 2**63 + 5, 2**64 - 1)


def _count(rng: random.Random, wide: bool) -> int:
    return rng.choice(WIDE) if wide and rng.random() < 0.2 else rng.choice((0, 0, 1, 40, 1500, 90_000))


def nsel_load(seed: int, template: Template, n: int = 400) -> list[tuple[bytes, Source]]:
    """Two ASAs sharing connection ids, events in any order (updates after teardowns, teardowns with
    no update, quiet updates), some counters wide enough to pass 2**64 when added."""
    rng = random.Random(seed)
    wide = template is NSEL_WIDE
    out: list[tuple[bytes, Source]] = []
    ms = int(T0 * 1000)
    for k in range(2):
        exp = Exporter("127.0.0.1:9", protocol=9, source_id=k, records_per_packet=rng.choice((1, 5, 9)),
                       clock=lambda: T0)
        recs = []
        for _ in range(n):
            conn = rng.randrange(12)
            src, dst = f"10.30.{k}.{conn}", f"192.0.2.{conn % 3}"
            sport, dport = 40000 + conn, rng.choice((53, 443))
            event = rng.choice(EVENTS)
            quiet = event == 1 and rng.random() < 0.8  # (a create carries no counters, mostly)
            head = (conn, src, sport, dst, dport, rng.choice((6, 17)), 1 + conn % 3, 7, event)
            if wide:
                rec = head + (rng.randrange(3),) + tuple(0 if quiet else _count(rng, wide) for _ in range(4)) + (
                    rng.choice((0, 0x12, 0x18)), f"00:00:00:00:00:{conn:02x}", "00:00:5e:00:53:01", 24, 16,
                    ms - 5000, ms)
            else:
                rec = head + (0 if quiet else _count(rng, False), 0 if quiet else _count(rng, False),
                              rng.randrange(1, 10**6), ms - 5000, ms)
            recs.append(rec)
        out += [(g, Source(f"198.51.100.{k + 1}", 2055, "default", T0)) for g in exp.encode(template, recs)]
    return out


def biflow_load(seed: int, template: Template, n: int = 300) -> list[tuple[bytes, Source]]:
    rng = random.Random(seed)
    ms = int(T0 * 1000)
    exp = Exporter("127.0.0.1:9", protocol=10, source_id=1, records_per_packet=7, clock=lambda: T0)
    recs = []
    for i in range(n):
        src, dst = f"10.31.0.{i % 9}", f"192.0.2.{i % 4}"
        sport, dport = 40000 + i % 50, rng.choice((53, 443))
        fwd = (_count(rng, True), _count(rng, True))
        back = (_count(rng, True), _count(rng, True)) if rng.random() < 0.7 else (0, 0)
        if template is BIFLOW_WIDE:
            recs.append((src, dst, sport, dport, 6, 2, 5, "00:00:00:00:00:01", "00:00:5e:00:53:02", 24, 8, *fwd,
                         0x1A, *back, 0x12, ms - 3000, ms))
        else:
            recs.append((src, dst, sport, dport, 17, 2, *fwd, *back, ms - 3000, ms))
    return [(g, Source("198.51.100.7", 4739, "default", T0)) for g in exp.encode(template, recs)]


def decode_both(load: list[tuple[bytes, Source]], reverse: bool,
                cfg: DecoderConfig | None = None) -> tuple[list[Any], list[Any], int, TemplateDecoder, TemplateDecoder]:
    """Every datagram's flows by the columnar decoder (its chunks' flow tuples) and by the per-record
    one, and how many came as vendor chunks."""
    cfg = cfg or DecoderConfig()
    cols, ref = TemplateDecoder(cfg, columnar=True, reverse=reverse), TemplateDecoder(cfg, reverse=reverse)
    got: list[Any] = []
    want: list[Any] = []
    derived = 0
    for data, src in load:
        d = cols.decode(data, src)
        derived += sum(c.count for c in d.chunks if isinstance(c, VendorChunk))
        for c in d.chunks:
            if isinstance(c, VendorChunk):
                columns_read_the_flows(c)
        got.append([f for c in d.chunks for f in c.rows()] + d.flows)
        want.append(ref.decode(data, src).flows)
    return got, want, derived, cols, ref


def columns_read_the_flows(chunk: VendorChunk) -> None:
    """What numpy reads of a vendor chunk's flows (key parts, counters, times, flags, kept and
    additional fields) is its flow tuples', for every flow the columns hold."""
    cols = Columns([chunk])
    rows = chunk.rows()
    at = np.flatnonzero(cols.ok)
    kept, more = cols.kept_at(at)
    for k, p in enumerate(at.tolist()):
        f = rows[p]
        assert f is not None
        for slot, part in zip(KEY_SLOTS, cols.parts, strict=True):
            value = None if part is None else part[p]
            if part is not None and part.dtype.kind == "V":
                value = value.tobytes()
            assert value == (f[slot] if part is not None else None) or (part is None and f[slot] in (0, b"")), slot
        assert (int(cols.bytes[p]), int(cols.packets[p]), int(cols.start[p]), int(cols.end[p]),
                int(cols.flags[p])) == (f[BYTES], f[PACKETS], f[START], f[END], f[TCP_FLAGS])
        assert kept[k] == kept_fields(f)
        assert (None if more is None else more[k]) == f[EXTRAS]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("template", [NSEL_WIDE, NSEL_BYTES], ids=["wide", "bytes"])
@pytest.mark.parametrize("reverse", [False, True])
def test_nsel_chunks_make_the_flows_and_state_of_the_per_record_rules(seed: int, template: Template,
                                                                     reverse: bool) -> None:
    """Small connection caps (eviction, untracked updates) included: same flows in the same order,
    same outcome counts and connection state."""
    cfg = DecoderConfig(nsel_max_connections_per_exporter=5, nsel_max_connections=8) if seed % 2 else None
    got, want, derived, cols, ref = decode_both(nsel_load(seed, template), reverse, cfg)
    assert derived > 200
    assert got == want
    assert cols.nsel.stats == ref.nsel.stats
    assert cols.nsel.stats.create and cols.nsel.stats.counted_before and cols.nsel.stats.flow
    if cfg is not None:
        assert cols.nsel.stats.evicted or cols.nsel.stats.untracked
    flows = [f for fs in want for f in fs]
    assert {f[EXTRAS]["fw_event"] for f in flows} >= {"teardown", "update", "deny", "9"}
    if reverse:  # a responder's share as its own flow: seen the other way
        assert any(f[SRC_IP].startswith(bytes((192, 0, 2))) for f in flows)
    if template is NSEL_WIDE and not reverse:
        assert any(f[BYTES] == 2**64 - 1 for f in flows)  # (initiator + responder held at the largest)


@pytest.mark.parametrize("template", [BIFLOW_WIDE, BIFLOW_ONE_IF], ids=["wide", "one_interface"])
def test_biflow_chunks_make_the_flows_of_the_per_record_rule(template: Template) -> None:
    got, want, derived, _, _ = decode_both(biflow_load(1, template), reverse=True)
    assert got == want
    flows = [f for fs in want for f in fs]
    assert any(f[SRC_PORT] in (53, 443) for f in flows)  # reverse directions
    # both interfaces or none: the columns exchange them; one without the other: flow tuples
    assert derived == (len(flows) if template is BIFLOW_WIDE else 0)


@pytest.mark.parametrize("batch", [1, 6, 1000])
@pytest.mark.parametrize("reverse", [False, True])
def test_nsel_and_biflow_chunks_aggregate_like_the_reference(batch: int, reverse: bool) -> None:
    load = nsel_load(7, NSEL_WIDE) + nsel_load(8, NSEL_BYTES) + biflow_load(9, BIFLOW_WIDE)
    listener = ListenerConfig(flow_type="netflow9", reverse_flows=reverse)
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=3)
    out_c, out_t, chunked = aggregate_both(load, cfg, batch=batch, listener=listener)
    assert chunked > 800
    _same(out_c, out_t)


@pytest.mark.parametrize("load", ["biflow", "nsel"])
def test_a_mapped_field_that_a_reverse_flow_swaps_keeps_its_value(load: str) -> None:
    """A mapping copies the source port (IE 7) into an additional field: a reverse flow keeps the
    record's value there (the reference swaps endpoints, not additional fields), so such a
    template's data sets are not exchanged as columns."""
    grams = biflow_load(2, BIFLOW_WIDE, 40) if load == "biflow" else nsel_load(3, NSEL_WIDE, 60)
    listener = ListenerConfig(flow_type="netflow9", reverse_flows=True,
                              mapping=[MappingConfig(field=7, destination="orig_sport", type="integer")])
    out_c, out_t, _ = aggregate_both(grams, AggregatorConfig(flush_interval=10.0), batch=3, listener=listener)
    _same(out_c, out_t)
    flows = [f for tick in out_t for f in tick]
    assert any(f[EXTRAS]["orig_sport"] != f[SRC_PORT] for f in flows)  # (reverse flows were made)


NSEL_CAPTURES = ["nf9_cisco_asa", "nf9_paloalto_panos", "nf9_paloalto81_zerofilled", "ipfix_barracuda"]


@pytest.mark.parametrize("batch", [1, 1000])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", captures.cases([n for n in NSEL_CAPTURES if n in captures.names()]))
def test_nsel_captures_take_the_columnar_path(name: str, reverse: bool, batch: int) -> None:
    """Cisco ASA, Palo Alto (firewallEvent 233 makes its templates NSEL) and Barracuda exports: every
    data set comes as a chunk of derived flows, the same flows as the per-record rules make. (With
    reverse_flows, Barracuda's stay flow tuples: a source MAC and no destination MAC, which a
    responder's flow would exchange.)"""
    load = [(g.payload, Source(g.src, g.sport, "default", g.time)) for g in captures.datagrams(name)]
    got, want, derived, cols, ref = decode_both(load, reverse)
    assert got == want and cols.nsel.stats == ref.nsel.stats
    assert derived == (0 if reverse and name == "ipfix_barracuda" else sum(map(len, want)))
    assert sum(map(len, want))
    listener = ListenerConfig(flow_type="netflow9", reverse_flows=reverse)
    out_c, out_t, _ = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=batch, listener=listener)
    _same(out_c, out_t)
