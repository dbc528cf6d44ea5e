"""The whole service: real UDP in, aggregation, real HTTP POSTs out, metrics, graceful stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from tests.support import captures
from tests.support.backend import Backend
from tests.support.service_helpers import http_get, make_config, metric, running, send_udp, sums


async def test_real_v5_exports_arrive_aggregated_with_tshark_totals() -> None:
    names = captures.own_names("nf5_") + captures.names("nf5_")  # softflowd exports made here + vendors'
    assert names
    with Backend() as be:
        async with running(make_config(be.url)) as svc:
            port = svc.listeners[0].cfg.port
            want: dict[tuple, list[int]] = {}
            for i, name in enumerate(names):
                send_udp(port, [g.payload for g in captures.datagrams(name)], f"127.0.1.{i + 1}")
                for k, v in captures.expected_sums(name).items():
                    w = want.setdefault(k, [0, 0])
                    w[0] += v[0]
                    w[1] += v[1]
            total = sum(len(captures.expected(n)["records"]) for n in names)
            assert await be.wait_flows_async(1, 10)
            with trio.move_on_after(10):
                while sum(f["packets"] for f in be.flows) < sum(v[1] for v in want.values()):
                    await trio.sleep(0.1)
        assert sums(be.flows) == want
        assert metric(svc, "flowpipe_flows_decoded_total", flow_type="netflow5") == total
        f = be.flows[0]
        assert f["type"] == "netflow5" and f["host"] == "test-host" and f["device"] == {"namespace": "default"}
        assert {fl["exporter"]["ip"] for fl in be.flows} == {f"127.0.1.{i + 1}" for i in range(len(names))}
        assert all(r.headers.get("Content-Encoding") == "gzip" for r in be.requests)


async def test_malformed_datagram_is_counted_and_the_next_one_decodes(shared_captures: Path) -> None:
    good = captures.datagrams("nf5_mikrotik")[0].payload
    with Backend() as be:
        async with running(make_config(be.url)) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [good[:30], b"\x00\x07garbage", good[:2] + b"\x00\x99" + good[4:], good], "127.0.2.1")
            assert await be.wait_flows_async(30, 10)
            assert metric(svc, "flowpipe_datagrams_received_total", flow_type="netflow5") == 4
            assert metric(svc, "flowpipe_datagrams_decoded_total", flow_type="netflow5") == 1
            assert metric(svc, "flowpipe_datagrams_invalid_total", flow_type="netflow5", reason="bad_length") == 2
            assert metric(svc, "flowpipe_datagrams_invalid_total", flow_type="netflow5", reason="bad_version") == 1
    assert sum(f["packets"] for f in be.flows) == 160


async def test_stop_flushes_contexts_that_are_not_due_yet(shared_captures: Path) -> None:
    good = captures.datagrams("nf5_akvorado")[0].payload
    with Backend() as be:
        cfg = make_config(be.url, aggregator={"flush_interval": 300.0, "flush_tick": 10.0})
        async with running(cfg) as svc:
            send_udp(svc.listeners[0].cfg.port, [good])
            with trio.move_on_after(5):
                while metric(svc, "flowpipe_aggregator_flows_received_total") < 29:
                    await trio.sleep(0.05)
            assert be.count() == 0               # nothing due before the first tick
        # leaving the block stopped the service: everything held was flushed and delivered
        assert len(be.flows) == 29 and sum(f["bytes"] for f in be.flows) == 88345
        assert metric(svc, "flowpipe_flows_flushed_total") == 29
        assert metric(svc, "flowpipe_forwarder_flows_sent_total") == 29


async def test_metrics_and_health_endpoints() -> None:
    with Backend() as be:
        async with running(make_config(be.url)) as svc:
            base = f"http://127.0.0.1:{svc.metrics_server.port}"
            status, body = await trio.to_thread.run_sync(http_get, base + "/healthz")
            assert status == 200
            send_udp(svc.listeners[0].cfg.port, [b"\x00\x05short"])
            await trio.sleep(0.3)
            status, body = await trio.to_thread.run_sync(http_get, base + "/metrics")
            assert status == 200
            assert 'flowpipe_datagrams_invalid_total{flow_type="netflow5",reason="short"} 1.0' in body
            for name in ("flowpipe_datagrams_received_total", "flowpipe_datagrams_held", "flowpipe_flows_dropped_total",
                         "flowpipe_aggregator_contexts", "flowpipe_flows_flushed_total",
                         "flowpipe_forwarder_flows_sent_total", "flowpipe_socket_drops_total"):
                assert name.removesuffix("_total") in body
            assert (await trio.to_thread.run_sync(http_get, base + "/nope"))[0] == 404


@pytest.mark.slow
async def test_backend_down_is_survived_and_data_arrives_later(shared_captures: Path) -> None:
    good = captures.datagrams("nf5_mikrotik")[0].payload
    with Backend() as be:
        be.stop()
        async with running(make_config(be.url)) as svc:
            send_udp(svc.listeners[0].cfg.port, [good])
            await trio.sleep(1.5)
            assert metric(svc, "flowpipe_forwarder_flows_sent_total") == 0
            be.start()
            assert await be.wait_flows_async(30, 15)
    assert sum(f["bytes"] for f in be.flows) == 40812


@pytest.mark.slow
def test_cli_run_sigterm_delivers_and_exits_zero(tmp_path: Path) -> None:
    good = captures.datagrams("nf5_mikrotik")[0].payload
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    with Backend() as be:
        cfg = tmp_path / "f.toml"
        cfg.write_text(f'[[listeners]]\nflow_type = "netflow5"\nbind_host = "127.0.0.1"\nport = {port}\n'
                       f'[aggregator]\nflush_interval = 300\n[forwarder]\nurl = "{be.url}"\n'
                       f'[metrics]\nlisten = "127.0.0.1:{mport}"\n')
        env = {**os.environ, "FLOWPIPE_CONFIG": str(cfg)}
        proc = subprocess.Popen([sys.executable, "-m", "flowpipe.cli", "run"], env=env, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 20
            while not (_up(mport) and http_get(f"http://127.0.0.1:{mport}/healthz")[0] == 200):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
            send_udp(port, [good])
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert sum(f["bytes"] for f in be.flows) == 40812
        assert "event=stopped" in (proc.stderr.read() if proc.stderr else "")


def _up(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
