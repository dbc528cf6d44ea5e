"""Sequence tracking: gaps become loss estimates, restarts become resets, wraps are not resets."""
from __future__ import annotations

from flowpipe.aggregate.sequence import SequenceTracker
from flowpipe.decode.base import SequenceObs
from flowpipe.metrics import Metrics


def value(m: Metrics, name: str, exporter: str = "192.0.2.1", flow_type: str = "netflow5") -> float:
    v = m.registry.get_sample_value(f"flowpipe_{name}_total", {"namespace": "default", "exporter": exporter,
                                                                "flow_type": flow_type})
    return v or 0.0


def feed(t: SequenceTracker, flow_type: str, seqs: list[tuple[int, int]], domain: int = 0) -> None:
    for seq, units in seqs:
        t.observe("default", "192.0.2.1", flow_type, SequenceObs(domain, seq, units), units)


def test_v5_gap_counts_missing_flows_exactly() -> None:
    m = Metrics()
    t = SequenceTracker(m)
    feed(t, "netflow5", [(100, 30), (130, 30), (190, 30), (220, 10)])  # 160..189 missing
    assert value(m, "flows_lost_estimate") == 30
    assert value(m, "sequence_delta") == 30 + 60 + 10
    assert value(m, "sequence_reset") == 0


def test_first_sighting_is_a_baseline_not_a_loss() -> None:
    m = Metrics()
    feed(SequenceTracker(m), "netflow5", [(5_000_000, 30)])
    assert value(m, "flows_lost_estimate") == 0 and value(m, "sequence_delta") == 0


def test_restart_is_a_reset_not_a_negative_delta() -> None:
    m = Metrics()
    t = SequenceTracker(m)
    feed(t, "ipfix", [(50_000, 10), (50_010, 10), (0, 10), (10, 10)])
    assert value(m, "sequence_reset", flow_type="ipfix") == 1
    assert value(m, "flows_lost_estimate", flow_type="ipfix") == 0
    assert value(m, "sequence_delta", flow_type="ipfix") == 30


def test_wrap_at_2_32_is_progress() -> None:
    m = Metrics()
    t = SequenceTracker(m)
    feed(t, "netflow5", [(2**32 - 30, 30), (0, 30), (30, 30)])
    assert value(m, "sequence_reset") == 0 and value(m, "flows_lost_estimate") == 0
    assert value(m, "sequence_delta") == 60


def test_reordered_datagram_is_neither_loss_nor_reset() -> None:
    m = Metrics()
    t = SequenceTracker(m)
    feed(t, "netflow9", [(1, 1), (2, 1), (4, 1), (3, 1), (5, 1)])
    assert value(m, "sequence_reset", flow_type="netflow9") == 0
    assert value(m, "sequence_delta", flow_type="netflow9") == 4


def test_v9_lost_packets_are_estimated_in_flows() -> None:
    m = Metrics()
    t = SequenceTracker(m)
    for seq in (1, 2, 5):  # two export packets of ~24 flows missing
        t.observe("default", "192.0.2.1", "netflow9", SequenceObs(0, seq, 1), 24)
    assert value(m, "flows_lost_estimate", flow_type="netflow9") == 48


def test_domains_are_tracked_separately() -> None:
    m = Metrics()
    t = SequenceTracker(m)
    for seq in range(10):
        t.observe("default", "192.0.2.1", "ipfix", SequenceObs(1, 1000 + seq * 5, 5), 5)
        t.observe("default", "192.0.2.1", "ipfix", SequenceObs(2, 7 + seq * 5, 5), 5)
    assert value(m, "sequence_reset", flow_type="ipfix") == 0
    assert value(m, "flows_lost_estimate", flow_type="ipfix") == 0


def test_recent_restart_within_the_reorder_window_is_a_reset_once_it_continues() -> None:
    m = Metrics()
    t = SequenceTracker(m)
    feed(t, "netflow5", [(0, 30), (30, 30), (60, 30), (0, 30)])   # back by 90: could be a late datagram...
    assert value(m, "sequence_reset") == 0
    feed(t, "netflow5", [(30, 30), (60, 30)])                    # ...but the stream continues from it
    assert value(m, "sequence_reset") == 1
    assert value(m, "flows_lost_estimate") == 0


def test_tracker_cap_refuses_new_exporters_and_counts() -> None:
    m = Metrics()
    t = SequenceTracker(m, max_keys=2)
    for i in range(4):
        t.observe("default", f"192.0.2.{i}", "netflow5", SequenceObs(0, 0, 1), 1)
    assert len(t.states) == 2
    assert m.registry.get_sample_value("flowpipe_limits_hit_total", {"limit": "sequence_trackers"}) == 2
