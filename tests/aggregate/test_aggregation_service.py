"""Aggregation through the running service: merges, rollup, TTL, sequence gaps and resets."""
from __future__ import annotations

import time

import pytest
import trio

from flowpipe.export import DefaultRecord, encode_v5
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp

A, B, C = bytes([10, 1, 0, 1]), bytes([10, 1, 0, 2]), bytes([10, 1, 0, 3])
UPTIME = 1_000_000


def rec(sp: int = 40000, dp: int = 443, nbytes: int = 100, tos: int = 0, in_if: int = 1, src: bytes = A,
        dst: bytes = B, flags: int = 0x10) -> DefaultRecord:
    return DefaultRecord(src, dst, bytes(4), in_if, 2, 1, nbytes, UPTIME - 2000, UPTIME - 1000, sp, dp, flags, 6,
                         tos, 0, 0, 24, 24)


def v5(records: list[DefaultRecord], seq: int = 0) -> bytes:
    return encode_v5(records, UPTIME, int(time.time()), seq)


async def wait_for(cond, timeout: float = 10.0) -> bool:
    with trio.move_on_after(timeout):
        while not cond():
            await trio.sleep(0.05)
        return True
    return False


@pytest.mark.slow
async def test_same_key_merges_and_key_fields_separate() -> None:
    with Backend() as be:
        async with running(make_config(be.url, aggregator={"flush_interval": 2.0, "flush_tick": 2.0})) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [v5([rec(nbytes=100, flags=0x02), rec(nbytes=50, flags=0x10)], 0),
                            v5([rec(nbytes=7, tos=8), rec(nbytes=9, in_if=5), rec(nbytes=1, dp=80)], 2)])
            assert await wait_for(lambda: be.count() >= 4)
            await trio.sleep(0.3)
    by = {(f["destination"]["port"], f["ingress"]["interface"]["index"], f["bytes"]) for f in be.flows}
    assert by == {("443", 1, 150), ("443", 1, 7), ("443", 5, 9), ("80", 1, 1)}
    merged = next(f for f in be.flows if f["bytes"] == 150)
    assert merged["packets"] == 2 and merged["tcp_flags"] == ["SYN", "ACK"]


async def test_port_scan_and_busy_resolver_roll_up() -> None:
    with Backend() as be:
        cfg = make_config(be.url, aggregator={"port_rollup_disabled": False, "flush_interval": 1.0})
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            scan = [rec(sp=5555, dp=p, nbytes=60, dst=C) for p in range(1, 1001)]  # one source port, 1000 dports
            dns = [rec(sp=1024 + i, dp=53, nbytes=80) for i in range(3000)]       # 3000 client ports -> :53
            send_udp(port, [v5(scan[i:i + 30], i) for i in range(0, len(scan), 30)])
            send_udp(port, [v5(dns[i:i + 30], i) for i in range(0, len(dns), 30)], "127.0.3.1")
            assert await wait_for(lambda: sum(f["packets"] for f in be.flows) >= 4000)
    scan_flows = [f for f in be.flows if f["destination"]["ip"] == "10.1.0.3"]
    dns_flows = [f for f in be.flows if f["destination"]["port"] == "53" or f["source"]["port"] == "*"]
    assert len(scan_flows) <= 10 and sum(f["bytes"] for f in scan_flows) == 60_000
    assert [f["destination"]["port"] for f in scan_flows].count("*") == 1
    assert len(dns_flows) <= 10 and sum(f["bytes"] for f in dns_flows) == 240_000
    assert [f["source"]["port"] for f in dns_flows].count("*") == 1


@pytest.mark.slow
async def test_idle_context_expires_after_ttl() -> None:
    with Backend() as be:
        cfg = make_config(be.url, aggregator={"flush_interval": 0.5, "flow_context_ttl": 1.0, "flush_tick": 0.1})
        async with running(cfg) as svc:
            send_udp(svc.listeners[0].cfg.port, [v5([rec(), rec(sp=1)])])
            assert await wait_for(lambda: be.count() == 2)
            assert metric(svc, "flowpipe_aggregator_contexts") == 2
            assert await wait_for(lambda: metric(svc, "flowpipe_aggregator_contexts") == 0, 5)
            send_udp(svc.listeners[0].cfg.port, [v5([rec()], 2)])
            assert await wait_for(lambda: be.count() == 3)  # a new context again, emitted at once


async def test_sequence_gap_shows_exactly_and_restart_is_a_reset() -> None:
    with Backend() as be:
        async with running(make_config(be.url)) as svc:
            port = svc.listeners[0].cfg.port
            batch = [rec(sp=i) for i in range(30)]
            seqs = [0, 30, 60, 150, 180]                    # 90..149 never arrive: 60 flows lost
            send_udp(port, [v5(batch, s) for s in seqs], "127.0.4.1")
            labels = {"namespace": "default", "exporter": "127.0.4.1", "flow_type": "netflow5"}
            assert await wait_for(lambda: metric(svc, "flowpipe_sequence_delta_total", **labels) == 60 + 120)
            assert metric(svc, "flowpipe_flows_lost_estimate_total", **labels) == 60
            assert metric(svc, "flowpipe_sequence_reset_total", **labels) == 0
            send_udp(port, [v5(batch, 0), v5(batch, 30)], "127.0.4.1")   # the exporter restarted
            assert await wait_for(lambda: metric(svc, "flowpipe_sequence_reset_total", **labels) == 1)
            assert metric(svc, "flowpipe_flows_lost_estimate_total", **labels) == 60


@pytest.mark.slow
async def test_generated_loss_is_estimated_exactly_for_v5_and_ipfix() -> None:
    import json
    import subprocess
    import sys

    for protocol in ("netflow5", "ipfix"):
        with Backend() as be:
            async with running(make_config(be.url, listeners=[{"flow_type": "netflow9"}])) as svc:
                port = svc.listeners[0].cfg.port
                out = await trio.run_process([sys.executable, "-m", "flowpipe.cli", "generate", "--target",
                                              f"127.0.0.1:{port}", "--protocol", protocol, "--flows", "3000",
                                              "--drop-every", "7", "--seed", "3", "--rate", "50000"],
                                             capture_stdout=True, stderr=subprocess.DEVNULL)
                sent = json.loads(out.stdout.decode().strip().splitlines()[-1])
                assert sent["flows_skipped"] > 0
                received = sent["flows"]  # (the flows sent: those skipped are counted apart, not in it)

                def arrived(want: int = received) -> bool:  # taken by the accumulator, which tracks sequences
                    return metric(svc, "flowpipe_aggregator_flows_received_total") >= want
                assert await wait_for(arrived, 15)
                labels = {"namespace": "default", "exporter": "127.0.0.1", "flow_type": protocol}
                lost = metric(svc, "flowpipe_flows_lost_estimate_total", **labels)
                # a skipped last datagram cannot be seen as a gap: nothing came after it
                assert sent["flows_skipped"] - 30 <= lost <= sent["flows_skipped"], (protocol, sent, lost)


async def test_rollup_tracker_cap_is_counted() -> None:
    with Backend() as be:
        cfg = make_config(be.url, aggregator={"port_rollup_disabled": False, "max_rollup_entries": 4,
                                              "flush_tick": 0.1})
        async with running(cfg) as svc:
            pairs = [rec(src=bytes([10, 1, 1, i]), dst=bytes([10, 1, 2, i])) for i in range(20)]
            send_udp(svc.listeners[0].cfg.port, [v5(pairs)])
            assert await be.wait_flows_async(20, 5)   # flows still aggregate and arrive
            assert await wait_for(lambda: metric(svc, "flowpipe_limits_hit_total", limit="rollup_entries") > 0, 3)


async def test_context_cap_drops_new_contexts_and_counts_them() -> None:
    with Backend() as be:
        cfg = make_config(be.url, aggregator={"max_contexts": 5, "flush_interval": 30.0, "flush_tick": 30.0})
        async with running(cfg) as svc:
            send_udp(svc.listeners[0].cfg.port, [v5([rec(sp=i) for i in range(8)]), v5([rec(sp=0, nbytes=7)], 8)])
            assert await wait_for(lambda: metric(svc, "flowpipe_flows_dropped_total", stage="aggregator",
                                                 reason="max_contexts") == 3)
            assert await wait_for(lambda: metric(svc, "flowpipe_aggregator_flows_received_total") == 9)
    # (the stop emitted what the five contexts held)
    assert len(be.flows) == 5 and sum(f["bytes"] for f in be.flows) == 5 * 100 + 7  # existing ones keep aggregating
