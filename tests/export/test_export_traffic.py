"""The synthetic traffic model: reproducible, plausible, and shaped like real traffic."""
from __future__ import annotations

import statistics
from collections import Counter

from flowpipe.export import DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, TrafficModel

EPHEMERAL = TrafficModel.EPHEMERAL
PORTS = {s[2] for s in TrafficModel.SERVICES}


def test_same_seed_same_flows_other_seed_other_flows() -> None:
    a = TrafficModel(7, ipv6_share=0.2).flows(500, 3_600_000)
    assert a == TrafficModel(7, ipv6_share=0.2).flows(500, 3_600_000)
    assert a != TrafficModel(8, ipv6_share=0.2).flows(500, 3_600_000)


def test_flows_fit_the_default_templates_and_look_real() -> None:
    batch = TrafficModel(1, ipv6_share=0.25).flows(4000, 3_600_000)
    assert len(batch.ipv4) + len(batch.ipv6) == 4000 and 0.15 < len(batch.ipv6) / 4000 < 0.35
    DEFAULT_TEMPLATE.pack(batch.ipv4)
    DEFAULT_TEMPLATE_V6.pack(batch.ipv6)
    flows = batch.ipv4 + batch.ipv6
    protocols = Counter(f[12] for f in flows)
    assert protocols[6] > protocols[17] > protocols[1] + protocols[58] > 0
    for f in flows:
        sport, dport, proto, flags = f[9], f[10], f[12], f[11]
        if proto in (6, 17):
            # one side is a service port, the other an ephemeral client port
            assert (sport in PORTS and EPHEMERAL[0] <= dport <= EPHEMERAL[1]) or \
                (dport in PORTS and EPHEMERAL[0] <= sport <= EPHEMERAL[1])
        if proto != 6:
            assert flags == 0
        else:
            assert flags & 0x10 or flags == 0x02  # ACK set, or a lone SYN
        assert f[6] >= 40 * f[5] > 0  # at least a header per packet
        assert 0 <= f[7] <= f[8] <= 3_600_000
    packets = sorted(f[5] for f in flows)
    assert packets[-1] > 50 * statistics.median(packets)  # heavy tail
    assert len({f[0] for f in flows}) > 50 and len({f[9] for f in flows}) > 500


def test_v5_model_has_no_ipv6() -> None:
    assert TrafficModel(1).flows(1000, 0).ipv6 == []


def test_samples_are_single_packets_of_frame_size() -> None:
    batch = TrafficModel(2, ipv6_share=0.3).samples(3000, 5000)
    for f in batch.ipv4:
        assert f[5] == 1 and 64 <= f[6] <= 1518 and f[7] == f[8] == 5000
    for f in batch.ipv6:
        assert f[5] == 1 and 90 <= f[6] <= 1518
    assert Counter(f[6] for f in batch.ipv4).most_common(1)[0][0] < 200  # small ACKs dominate


def test_pool_replays_distinct_flows_at_the_new_time() -> None:
    m = TrafficModel(3, ipv6_share=0.1, pool=100)
    first = m.flows(100, 10_000)
    again = m.flows(100, 25_000)
    moved = [f[:7] + (f[7] + 15_000, f[8] + 15_000) + f[9:] for f in first.ipv4]
    assert again.ipv4 == moved and len(again.ipv6) == len(first.ipv6)
    wrapped = m.flows(250, 30_000)  # the pool goes round again
    assert len({f[:7] + f[9:] for f in wrapped.ipv4 + wrapped.ipv6}) <= 100
