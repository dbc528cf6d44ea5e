"""Template state in the running service: early data held, templates persisted across restarts."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from flowpipe.export import DEFAULT_TEMPLATE, DefaultRecord, Netflow9Encoder
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp

UP = 50_000


def recs(n: int, base: int = 0) -> list[DefaultRecord]:
    return [DefaultRecord(bytes([10, 3, 0, 1]), bytes([10, 3, 0, 2]), bytes(4), 1, 2, 3, 300, UP - 900, UP - 100,
                          40000 + base + i, 443, 0x18, 6, 0, 0, 0, 24, 24) for i in range(n)]


def balanced(svc, ft: str = "netflow9") -> bool:
    """datagrams: received = decoded + invalid + held + dropped."""
    got = metric(svc, "flowpipe_datagrams_received_total", flow_type=ft)
    parts = (metric(svc, "flowpipe_datagrams_decoded_total", flow_type=ft)
             + sum(s.value for fam in svc.metrics.datagrams_invalid.collect() for s in fam.samples
                   if s.name.endswith("_total") and s.labels["flow_type"] == ft)
             + metric(svc, "flowpipe_datagrams_held")
             + sum(s.value for fam in svc.metrics.datagrams_dropped.collect() for s in fam.samples
                   if s.name.endswith("_total")))
    return got == parts


async def test_data_before_template_is_held_then_decoded() -> None:
    enc = Netflow9Encoder(source_id=3)
    now = int(time.time())
    with Backend() as be:
        async with running(make_config(be.url, listeners=[{"flow_type": "netflow9"}])) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [enc.data_packet(DEFAULT_TEMPLATE, recs(10), UP, now)], "127.0.10.1", 40555)
            await trio.sleep(0.5)
            assert metric(svc, "flowpipe_datagrams_held") == 1 and be.count() == 0
            assert balanced(svc)
            send_udp(port, [enc.template_packet([DEFAULT_TEMPLATE], UP, now)], "127.0.10.1", 40555)
            assert await be.wait_flows_async(10, 5)
            assert metric(svc, "flowpipe_datagrams_held") == 0
            assert metric(svc, "flowpipe_datagrams_decoded_total", flow_type="netflow9") == 2
            assert balanced(svc)
    assert sum(f["bytes"] for f in be.flows) == 3000


@pytest.mark.slow
async def test_template_that_never_comes_is_counted_as_dropped() -> None:
    enc = Netflow9Encoder(source_id=3)
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9"}], decoder={"hold_timeout": 0.5})
        async with running(cfg) as svc:
            send_udp(svc.listeners[0].cfg.port, [enc.data_packet(DEFAULT_TEMPLATE, recs(5), UP, int(time.time()))])
            with trio.move_on_after(5):
                while not metric(svc, "flowpipe_datagrams_dropped_total", reason="template_never_came"):
                    await trio.sleep(0.1)
            assert metric(svc, "flowpipe_datagrams_dropped_total", reason="template_never_came") == 1
            assert metric(svc, "flowpipe_datagrams_held") == 0
            assert balanced(svc)


async def test_templates_survive_a_restart(tmp_path: Path) -> None:
    state = str(tmp_path / "templates.state")
    enc = Netflow9Encoder(source_id=9)
    now = int(time.time())
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9"}], decoder={"state_file": state})
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [enc.template_packet([DEFAULT_TEMPLATE], UP, now),
                            enc.data_packet(DEFAULT_TEMPLATE, recs(4), UP, now)], "127.0.11.1", 40556)
            assert await be.wait_flows_async(4, 5)
        assert Path(state).exists()
        # a new process: same config, same port; the exporter sends data only (its template comes later)
        cfg2 = make_config(be.url, listeners=[{"flow_type": "netflow9"}], decoder={"state_file": state})
        cfg2.listeners[0].port = port
        async with running(cfg2) as svc2:
            send_udp(port, [enc.data_packet(DEFAULT_TEMPLATE, recs(6, 100), UP + 1000, now + 1)], "127.0.11.1", 40556)
            assert await be.wait_flows_async(10, 5)
            assert metric(svc2, "flowpipe_datagrams_held") == 0
            assert metric(svc2, "flowpipe_templates") >= 1


async def test_corrupt_state_file_does_not_stop_start_up(tmp_path: Path) -> None:
    state = tmp_path / "templates.state"
    state.write_bytes(b"\x93garbage that is not a state file")
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9"}], decoder={"state_file": str(state)})
        async with running(cfg) as svc:
            with trio.move_on_after(5):
                while not svc.healthy()[0]:
                    await trio.sleep(0.05)
            assert svc.healthy() == (True, "ok")
    assert state.read_bytes()[:1] != b"\x93" or len(state.read_bytes()) > 40  # rewritten at stop
