"""``GET /exporters`` through the running service: the live templates and the last sampling rate of each
exporter the test sent from (real UDP made by flowpipe.export, real metrics port)."""
from __future__ import annotations

import json
import socket
from typing import Any

import trio

from flowpipe.decode.templates import DomainView
from flowpipe.export import DEFAULT_TEMPLATE, DefaultRecord, Exporter
from flowpipe.inventory import MAX_IDS, templates_entry
from tests.support.backend import Backend
from tests.support.service_helpers import free_port, http_get, make_config, running, send_udp


def records(exp: Exporter, n: int = 3) -> list[DefaultRecord]:
    now = exp.uptime_ms()
    return [DefaultRecord(src_addr="10.9.0.1", dst_addr="10.9.0.2", next_hop="0.0.0.0", in_if=1, out_if=2,
                          packets=2, bytes=300 + i, first=now - 900, last=now, src_port=40000 + i, dst_port=443,
                          tcp_flags=0x18, protocol=6, tos=0, src_as=0, dst_as=0, src_mask=24, dst_mask=24)
            for i in range(n)]


def send_to(host: str, port: int, payloads: list[bytes], source: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        for p in payloads:
            s.sendto(p, (host, port))


async def inventory(svc: Any, until: Any) -> dict[tuple[str, str], dict[str, Any]]:
    url = f"http://127.0.0.1:{svc.metrics_server.port}/exporters"
    got: dict[tuple[str, str], dict[str, Any]] = {}
    with trio.move_on_after(10):
        while True:
            status, body = await trio.to_thread.run_sync(http_get, url)
            assert status == 200
            got = {(e["address"], e["flow_type"]): e for e in json.loads(body)}
            if until(got):
                break
            await trio.sleep(0.05)
    return got


async def test_exporters_show_live_templates_waiting_ids_and_sampling_rates() -> None:
    # one netflow9 listener takes v9 and v5 (the datagram's version decides); sFlow on another address
    listeners = [{"flow_type": "netflow9"}, {"flow_type": "sflow5", "bind_host": "127.0.0.2"}]
    with Backend() as be:
        async with running(make_config(be.url, listeners)) as svc:
            nf9, sfl = (lst.cfg.port for lst in svc.listeners)
            nf5 = nf9
            v9 = Exporter(f"127.0.0.1:{nf9}", protocol=9, source_id=7)
            send_udp(nf9, v9.encode(DEFAULT_TEMPLATE, records(v9)), "127.0.18.20")
            # another router whose data comes before its template: held, waiting for template 256
            late = Exporter(f"127.0.0.1:{nf9}", protocol=9, source_id=8)
            template_packet, data_packet = late.encode(DEFAULT_TEMPLATE, records(late))
            sport = free_port()  # the source port is part of a template's scope: both datagrams from it
            send_udp(nf9, [data_packet], "127.0.18.21", sport)
            v5 = Exporter(f"127.0.0.1:{nf5}", protocol=5, sampling_rate=100)
            send_udp(nf5, v5.encode(DEFAULT_TEMPLATE, records(v5)), "127.0.18.22")
            sf = Exporter(f"127.0.0.1:{sfl}", protocol="sflow5", sampling_rate=512, agent="127.0.18.23")
            send_to("127.0.0.2", sfl, sf.encode(DEFAULT_TEMPLATE, records(sf)), "127.0.18.23")

            def complete(got: dict[tuple[str, str], dict[str, Any]]) -> bool:
                return len(got) == 4 and got[("127.0.18.21", "netflow9")]["templates"] != []
            got = await inventory(svc, complete)
            router = got[("127.0.18.20", "netflow9")]
            (dom,) = router["templates"]
            assert (dom["domain"], dom["count"], dom["data"], dom["options"], dom["waiting_for"]) == \
                (7, 1, [DEFAULT_TEMPLATE.template_id], [], [])
            assert dom["last_template"] is not None and router["templates_truncated"] is False
            assert router["sampling_rate"] == 0  # it announced none
            (waiting,) = got[("127.0.18.21", "netflow9")]["templates"]
            assert (waiting["domain"], waiting["count"], waiting["waiting_for"]) == \
                (8, 0, [DEFAULT_TEMPLATE.template_id])
            assert got[("127.0.18.22", "netflow5")]["sampling_rate"] == 100
            assert got[("127.0.18.22", "netflow5")]["templates"] == []
            assert got[("127.0.18.23", "sflow5")]["sampling_rate"] == 512

            # the template comes: the held data is decoded and nothing waits any more
            send_udp(nf9, [template_packet], "127.0.18.21", sport)
            got = await inventory(svc, lambda g: g[("127.0.18.21", "netflow9")]["templates"][0]["count"] == 1)
            (waiting,) = got[("127.0.18.21", "netflow9")]["templates"]
            assert (waiting["data"], waiting["waiting_for"]) == ([DEFAULT_TEMPLATE.template_id], [])


def test_template_lists_are_bounded() -> None:
    view = DomainView("192.0.2.1", "192.0.2.1", 2055, 10, 1, tuple(range(256, 456)), (), 0, 1.7e9)
    (entry,), cut = templates_entry([(view, list(range(600, 900)))])
    assert cut and entry["count"] == 200
    assert entry["data"] == list(range(256, 256 + MAX_IDS)) and len(entry["waiting_for"]) == MAX_IDS


def test_sampling_rates_remembered_are_bounded_and_the_refusals_counted() -> None:
    from flowpipe.decode.facts import SamplingSeen
    from flowpipe.metrics import Metrics

    m = Metrics()
    seen = SamplingSeen(2, m.limits_hit.labels("exporter_sampling_rates"))
    for i, rate in enumerate((100, 200, 300)):
        seen.note(("default", f"192.0.2.{i}", "netflow5"), rate)
    seen.note(("default", "192.0.2.0", "netflow5"), 50)  # a known exporter's new rate is taken
    assert [seen.get(("default", f"192.0.2.{i}", "netflow5")) for i in range(3)] == [50, 200, 0]
    assert m.registry.get_sample_value("flowpipe_limits_hit_total", {"limit": "exporter_sampling_rates"}) == 1


def test_the_inventory_is_built_from_what_the_stages_report() -> None:
    """The accumulator stage reports its exporter domains and when each was last seen, a decoder its
    template domains under its listener's namespace: what the service hands the inventory and exporter
    metadata, without reading either stage's internals."""
    from flowpipe.aggregate.config import AggregatorConfig
    from flowpipe.aggregate.stage import AccumulatorStage
    from flowpipe.decode.base import Source
    from flowpipe.decode.config import DecoderConfig
    from flowpipe.decode.dispatch import DatagramDecoder
    from flowpipe.decode.facts import template_domains
    from flowpipe.inventory import render
    from flowpipe.listen_config import ListenerConfig
    from flowpipe.metrics import Metrics
    from flowpipe.pipeline import FlowBatch, FlowQueue, SequenceObs

    stage = AccumulatorStage(AggregatorConfig(), Metrics(), queue=FlowQueue(100), max_sequence_keys=10)
    stage.take(FlowBatch([], [("lab", "192.0.2.1", "netflow9", SequenceObs(7, 10, 1), 3),
                              ("lab", "192.0.2.1", "netflow9", SequenceObs(8, 50, 1), 2),
                              ("lab", "192.0.2.1", "netflow9", SequenceObs(7, 11, 1), 3)]), 0.0)
    domains = stage.exporter_domains()
    assert sorted(domains) == [("lab", "192.0.2.1", "netflow9", 7), ("lab", "192.0.2.1", "netflow9", 8)]
    assert domains[("lab", "192.0.2.1", "netflow9", 7)].datagrams == 2
    seen = stage.exporters_seen()
    assert sorted(s[:3] for s in seen) == [("lab", "192.0.2.1", "netflow9")] * 2 and all(s[3] > 0 for s in seen)
    domains.clear()  # a copy: the stage's own state is untouched
    assert len(stage.exporter_domains()) == 2

    nf9 = DatagramDecoder("netflow9", DecoderConfig(), [], listener=ListenerConfig(flow_type="netflow9",
                                                                                  namespace="lab"))
    sflow = DatagramDecoder("sflow5", DecoderConfig(), [])
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=7)
    for datagram in exp.encode(DEFAULT_TEMPLATE, records(exp)):
        nf9.decode(datagram, Source("192.0.2.1", 2055, "lab"))
    assert sflow.template_domains() == []
    ((view, waiting),) = nf9.template_domains()
    assert (view.exporter, view.domain, view.data_ids, waiting) == ("192.0.2.1", 7, (DEFAULT_TEMPLATE.template_id,), [])
    by_exporter = template_domains([nf9, sflow])
    assert list(by_exporter) == [("lab", "192.0.2.1", "netflow9")]

    (entry,) = json.loads(render(stage.exporter_domains(), lambda key: 0, by_exporter))
    assert (entry["id"], entry["datagrams"], entry["flows"]) == ("lab:192.0.2.1:netflow9", 3, 8)
    assert [d["domain"] for d in entry["domains"]] == [7, 8]
    assert [t["domain"] for t in entry["templates"]] == [7]
