"""The decoder's state files (one per worker, named by decode/state.py, which the supervisor asks)
and its template registries' statistics turned into metrics (decode/upkeep.py, decode/
template_metrics.py): none of it is the service's business."""
from __future__ import annotations

from pathlib import Path

from flowpipe.config import DecoderConfig, ListenerConfig
from flowpipe.decode import state
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.state import listener_key
from flowpipe.decode.template_metrics import REFUSED_REASONS, TemplateMetrics
from flowpipe.metrics import Metrics


def test_a_worker_reads_its_own_file_first_then_the_others_that_exist(tmp_path: Path) -> None:
    base = str(tmp_path / "t.state")
    assert state.worker_state_file(base, 2) == base + ".w2"
    own = state.worker_state_file(base, 1)
    assert state.state_files(own) == [own]  # its own even when missing, nothing else yet
    for p in (base + ".w0", base + ".w2", base):
        Path(p).write_bytes(b"")
    assert state.state_files(own) == [own, base + ".w0", base + ".w2", base]
    Path(own).write_bytes(b"")
    assert state.state_files(own) == [own, base + ".w0", base + ".w2", base]
    assert state.state_files(base) == [base, base + ".w0", base + ".w1", base + ".w2"]


def test_listener_key() -> None:
    assert listener_key(ListenerConfig(flow_type="ipfix", port=9995)) == "ipfix:0.0.0.0:9995"


def test_template_statistics_become_counters_that_only_go_up() -> None:
    m = Metrics()
    decoders = [DatagramDecoder("netflow9", DecoderConfig(), []), DatagramDecoder("ipfix", DecoderConfig(), []),
                DatagramDecoder("sflow5", DecoderConfig(), [])]
    tm = TemplateMetrics(m)
    for d in decoders[:2]:
        assert d.templates is not None
        d.templates.registry.stats.templates = 3
        d.templates.registry.stats.refused_memory = 2
        d.templates.nsel.stats.create = 1
    tm.update(decoders)
    tm.update(decoders)
    value = m.registry.get_sample_value
    assert value("flowpipe_templates") == 6
    assert value("flowpipe_templates_refused_total", {"reason": "memory"}) == 4
    assert value("flowpipe_nsel_records_total", {"outcome": "create"}) == 2
    assert set(REFUSED_REASONS) == {"per_exporter_cap", "exporter_cap", "total_cap", "memory",
                                             "bad_template"}
