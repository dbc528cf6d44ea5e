"""The template decoder's parts count in typed stats (flowpipe.decode.stats), and the decode stage
turns them into its metrics by the difference."""
from __future__ import annotations

import attrs

from flowpipe.config import DecoderConfig
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.stats import DecoderStats, HoldStats, NselStats, TemplateStats
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.decode.template_metrics import NSEL_DROPS, NSEL_OUTCOMES, REFUSED_REASONS, TemplateMetrics
from flowpipe.export import Netflow9Encoder, Template
from flowpipe.metrics import Metrics
from tests.support.vendor import ASA_TEARDOWN, CREATE, TEARDOWN, UPDATE, asa

CONN = ("10.26.0.1", 50000, "192.0.2.1", 443)


def test_each_part_has_its_own_counters_with_slots_all_zero_at_first() -> None:
    dec = TemplateDecoder(DecoderConfig())
    parts = {DecoderStats: dec.stats, TemplateStats: dec.registry.stats, HoldStats: dec.hold.stats,
             NselStats: dec.nsel.stats}
    for cls, stats in parts.items():
        assert type(stats) is cls and "__slots__" in vars(cls)
        assert set(attrs.asdict(stats).values()) == {0}


def test_nsel_records_are_counted_by_outcome_and_become_metrics() -> None:
    d = DatagramDecoder("netflow9", DecoderConfig(), [])
    dec = d.templates
    assert dec is not None
    t = Template(ASA_TEARDOWN, 257)
    enc = Netflow9Encoder(1)
    dec.decode(enc.template_packet([t], 1000, 1_700_000_000), Source("a"))
    records = [asa(1, *CONN, UPDATE, counts=(100, 0)), asa(1, *CONN, TEARDOWN, counts=(100, 0)),
               asa(2, *CONN, CREATE, counts=(0, 0))]
    dec.decode(enc.data_packet(t, records, 1000, 1_700_000_000), Source("a"))
    assert (dec.nsel.stats.flow, dec.nsel.stats.counted_before, dec.nsel.stats.create) == (1, 1, 1)
    assert dec.registry.stats.templates == 1 and dec.registry.stats.learned == 1
    m = Metrics()
    tm = TemplateMetrics(m)
    tm.update([d])
    dec.nsel.stats.flow += 2
    tm.update([d])
    value = m.registry.get_sample_value
    assert value("flowpipe_nsel_records_total", {"outcome": "flow"}) == 3
    assert value("flowpipe_nsel_records_total", {"outcome": "counted_before"}) == 1
    assert value("flowpipe_templates") == 1


def test_the_metric_labels_are_the_documented_ones() -> None:
    assert list(REFUSED_REASONS) == ["per_exporter_cap", "exporter_cap", "total_cap", "memory", "bad_template"]
    assert list(NSEL_OUTCOMES) == ["flow", "create", "counted_before"]
    assert list(NSEL_DROPS) == ["evicted", "untracked", "expired"]
