"""Accumulator rules: key, merge, cadence, TTL, drain, memory cap (Datadog semantics)."""
from __future__ import annotations

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.config import AggregatorConfig
from flowpipe.decode.rows import rows
from flowpipe.flow import Flow, make_flow

A, B, C = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x03"


def acc(**kw) -> Accumulator:
    kw.setdefault("port_rollup_disabled", True)
    return Accumulator(AggregatorConfig(**kw))


def flow(**kw) -> tuple:
    base = dict(exporter="192.0.2.1", src_ip=A, dst_ip=B, src_port=1000, dst_port=443, ip_protocol=6,
                bytes=100, packets=1, start=10, end=20)
    base.update(kw)
    return make_flow(**base)


def test_same_key_merges_bytes_packets_times_flags_and_keeps_first_fields() -> None:
    a = acc(flush_interval=60)
    a.add(rows([flow(tcp_flags=0x02, out_if=7, next_hop=C, extras={"vlan": 1}),
           flow(bytes=50, packets=2, start=5, end=15, tcp_flags=0x10, out_if=9, extras={"vlan": 2, "app": "x"}),
           flow(bytes=1, packets=1, start=12, end=30, tcp_flags=0x01)]), now=1000)
    (out,) = a.flush(1001)
    f = Flow._make(out)
    assert (f.bytes, f.packets, f.start, f.end) == (151, 4, 5, 30)
    assert f.tcp_flags == 0x13
    assert f.out_if == 7 and f.next_hop == C  # not in the key: kept from the window's first flow
    assert f.extras == {"vlan": 1, "app": "x"}  # first value per key, new keys added


def test_each_key_field_separates_contexts() -> None:
    variants = [dict(), dict(exporter="192.0.2.9"), dict(namespace="other"), dict(src_ip=C), dict(dst_ip=C),
                dict(src_port=1), dict(dst_port=1), dict(ip_protocol=17), dict(tos=4), dict(in_if=3)]
    a = acc()
    a.add(rows([flow(**v) for v in variants]), now=0)
    assert len(a.flush(1)) == len(variants)


def test_fields_outside_the_key_do_not_separate_contexts() -> None:
    a = acc()
    a.add(rows([flow(), flow(type="ipfix"), flow(out_if=5), flow(direction=1), flow(next_hop=C), flow(src_mac=5)]),
          now=0)
    (out,) = a.flush(1)
    assert Flow._make(out).bytes == 600


def test_new_context_is_emitted_on_first_tick_then_on_its_cadence() -> None:
    a = acc(flush_interval=300, flow_context_ttl=300)
    a.add(rows([flow()]), now=1000)
    assert len(a.flush(1005)) == 1            # first tick after first sight
    a.add(rows([flow()]), now=1010)
    assert a.flush(1100) == []                 # not due until 1000 + 300
    assert len(a.flush(1300)) == 1
    assert a.flush(1310) == []                 # nothing new: nothing emitted (no zero records)


def test_counters_are_per_window() -> None:
    a = acc(flush_interval=10)
    a.add(rows([flow(bytes=7)]), now=0)
    assert Flow._make(a.flush(1)[0]).bytes == 7
    a.add(rows([flow(bytes=3)]), now=2)
    assert Flow._make(a.flush(11)[0]).bytes == 3


def test_idle_context_expires_after_ttl_and_comes_back_immediately() -> None:
    a = acc(flush_interval=10, flow_context_ttl=30)
    a.add(rows([flow()]), now=0)
    a.flush(1)
    a.flush(20)
    assert len(a.contexts) == 1               # idle but within TTL: kept for the cadence
    a.flush(32)
    assert len(a.contexts) == 0               # TTL after the last emission: dropped
    a.add(rows([flow()]), now=40)
    assert len(a.flush(41)) == 1              # a new context again: first tick


def test_drain_emits_everything_held_not_yet_due() -> None:
    a = acc(flush_interval=300)
    a.add(rows([flow(), flow(src_port=2)]), now=0)
    a.flush(1)
    a.add(rows([flow(bytes=5)]), now=2)
    out = a.drain()
    assert [Flow._make(f).bytes for f in out] == [5]
    assert len(a.contexts) == 0


def test_context_cap_drops_new_contexts_but_keeps_aggregating_existing() -> None:
    a = acc(max_contexts=2)
    a.add(rows([flow(src_port=1), flow(src_port=2), flow(src_port=3), flow(src_port=1, bytes=5)]), now=0)
    assert a.dropped_full == 1
    assert sorted(Flow._make(f).bytes for f in a.flush(1)) == [100, 105]
