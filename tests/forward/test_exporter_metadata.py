"""Exporter metadata POSTed by the running service (real UDP in from flowpipe.export, a real HTTP server
receiving the metadata), in the Datadog Agent's NDM batch shape."""
from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from flowpipe.config import MetadataConfig
from flowpipe.export import DEFAULT_TEMPLATE, DefaultRecord, Exporter
from flowpipe.forward.metadata import payloads
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp


def one_flow(exp: Exporter) -> list[bytes]:
    now = exp.uptime_ms()
    rec = DefaultRecord(src_addr="10.8.0.1", dst_addr="10.8.0.2", next_hop="0.0.0.0", in_if=1, out_if=2, packets=1,
                        bytes=100, first=now - 500, last=now, src_port=1234, dst_port=80, tcp_flags=0, protocol=6,
                        tos=0, src_as=0, dst_as=0, src_mask=24, dst_mask=24)
    return exp.encode(DEFAULT_TEMPLATE, [rec])


async def wait_requests(be: Backend, n: int, timeout: float = 10) -> None:
    with trio.move_on_after(timeout):
        while len(be.requests) < n:
            await trio.sleep(0.05)


async def until_seen(svc: Any, exporters: int) -> None:
    """Until the service knows ``exporters`` exporters and a metadata round has failed since."""
    with trio.move_on_after(10):
        while len(svc.accumulator.exporter_domains()) < exporters:
            await trio.sleep(0.05)
    failed = metric(svc, "flowpipe_metadata_requests_total", status="connect_error")
    with trio.move_on_after(10):
        while metric(svc, "flowpipe_metadata_requests_total", status="connect_error") <= failed:
            await trio.sleep(0.05)


@pytest.mark.slow
async def test_exporters_are_posted_periodically_in_the_agents_batches() -> None:
    with Backend() as flows_be, Backend(path="/api/v2/ndm") as meta:
        cfg = make_config(flows_be.url, [{"flow_type": "netflow9", "namespace": "east"}],
                          forwarder={"headers": {"DD-API-KEY": "secret-1"}})
        cfg.metadata = MetadataConfig(url=meta.url, interval=0.3)
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            v9 = Exporter(f"127.0.0.1:{port}", protocol=9, source_id=1)
            v5 = Exporter(f"127.0.0.1:{port}", protocol=5)
            meta.stop()  # (so that both exporters are surely in one round: rounds fail until it is back)
            send_udp(port, one_flow(v9), "127.0.18.30")
            send_udp(port, one_flow(v5), "127.0.18.31")
            await until_seen(svc, 2)
            before = int(time.time())
            meta.start()
            await wait_requests(meta, 1)
            assert meta.requests, "no metadata POST"
            req = meta.requests[0]
            assert req.status == 200 and req.path == "/api/v2/ndm"
            assert req.headers["DD-API-KEY"] == "secret-1" and req.headers["Content-Encoding"] == "gzip"
            (payload,) = meta.flows  # one payload: one namespace, two exporters
            assert abs(payload.pop("collect_timestamp") - before) <= 5
            assert payload == {"namespace": "east", "integration": "netflow", "netflow_exporters": [
                {"id": "east:127.0.18.30:netflow9", "ip_address": "127.0.18.30", "flow_type": "netflow9"},
                {"id": "east:127.0.18.31:netflow5", "ip_address": "127.0.18.31", "flow_type": "netflow5"}]}
            # idle exporters are not sent again (as the Agent sends only exporters of flushed flows)
            await trio.sleep(1.0)
            assert len(meta.requests) == 1

            # 205 exporters while the endpoint is down: every round fails, then one delivers them all,
            # in payloads of 100, 100 and 5 in one request
            meta.stop()
            for i in range(205):
                send_udp(port, one_flow(v5), f"127.0.19.{i + 1}")
            await until_seen(svc, 207)
            meta.start()
            await wait_requests(meta, 2)
            assert meta.requests[1].status == 200
            sizes = [len(p["netflow_exporters"]) for p in meta.flows[1:]]
            assert sizes == [100, 100, 5], sizes
            ids = {e["id"] for p in meta.flows[1:] for e in p["netflow_exporters"]}
            assert ids == {f"east:127.0.19.{i + 1}:netflow5" for i in range(205)}
            # a refused round is sent again
            meta.fail(1, status=503)
            send_udp(port, one_flow(v5), "127.0.18.33")
            await wait_requests(meta, 4)
            assert [r.status for r in meta.requests[2:]] == [503, 200]
            assert [e["id"] for e in meta.flows[-1]["netflow_exporters"]] == ["east:127.0.18.33:netflow5"]
            with trio.move_on_after(10):  # the server records a request before the client reads the answer
                while metric(svc, "flowpipe_metadata_requests_total", status="200") < 3:
                    await trio.sleep(0.05)
            assert metric(svc, "flowpipe_metadata_requests_total", status="503") == 1
            assert metric(svc, "flowpipe_metadata_requests_total", status="200") == 3
            assert metric(svc, "flowpipe_metadata_exporters_sent_total") == 2 + 205 + 1


async def test_no_metadata_without_a_url_and_a_dead_endpoint_is_counted() -> None:
    with Backend() as flows_be, Backend(path="/ndm") as meta:
        cfg = make_config(flows_be.url)
        async with running(cfg) as svc:
            assert svc.metadata is None
        dead = Backend(path="/ndm").start()
        dead_url = dead.url
        dead.stop()
        cfg = make_config(flows_be.url)
        cfg.metadata = MetadataConfig(url=dead_url, interval=0.2)
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, one_flow(Exporter(f"127.0.0.1:{port}", protocol=5)), "127.0.18.32")
            with trio.move_on_after(10):
                while metric(svc, "flowpipe_metadata_requests_total", status="connect_error") < 2:
                    await trio.sleep(0.05)
            assert metric(svc, "flowpipe_metadata_requests_total", status="connect_error") >= 2
            assert metric(svc, "flowpipe_metadata_exporters_sent_total") == 0
            assert await flows_be.wait_flows_async(1, 10)  # flows are delivered whatever metadata does
        assert meta.requests == []


def test_payloads_group_by_namespace_and_list_each_exporter_once() -> None:
    got = payloads([("a", "192.0.2.1", "ipfix"), ("b", "192.0.2.1", "ipfix"), ("a", "192.0.2.1", "ipfix"),
                    ("a", "2001:db8::1", "sflow5")], 1700000000)
    assert got == [
        {"namespace": "a", "integration": "netflow", "collect_timestamp": 1700000000, "netflow_exporters": [
            {"id": "a:192.0.2.1:ipfix", "ip_address": "192.0.2.1", "flow_type": "ipfix"},
            {"id": "a:2001:db8::1:sflow5", "ip_address": "2001:db8::1", "flow_type": "sflow5"}]},
        {"namespace": "b", "integration": "netflow", "collect_timestamp": 1700000000, "netflow_exporters": [
            {"id": "b:192.0.2.1:ipfix", "ip_address": "192.0.2.1", "flow_type": "ipfix"}]}]
