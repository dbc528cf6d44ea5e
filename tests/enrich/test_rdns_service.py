"""Reverse DNS in the running service: names from a real DNS server reach the backend's payloads."""
from __future__ import annotations

import time

import pytest
import trio

from flowpipe.export import DefaultRecord, encode_v5
from tests.support.backend import Backend
from tests.support.dns_server import DnsTestServer
from tests.support.service_helpers import make_config, running, send_udp

DB, APP, PUBLIC, SILENT = "10.20.0.7", "10.20.0.8", "198.51.100.9", "10.20.0.99"


def rec(src: str, dst: str, sp: int) -> DefaultRecord:
    return DefaultRecord(bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))), bytes(4), 1, 2, 1, 100,
                         1000, 2000, sp, 5432, 0x10, 6, 0, 0, 0, 24, 24)


@pytest.mark.slow
async def test_payload_carries_names_and_a_dead_lookup_does_not_hold_the_flush(dns_srv: DnsTestServer) -> None:
    with Backend() as be:
        dns_srv.add_ptr(DB, "db-2.example.internal")
        dns_srv.add_ptr(APP, "app-1.example.internal")
        dns_srv.set_silent(SILENT)
        cfg = make_config(be.url, aggregator={"flush_interval": 1.0, "flush_tick": 0.2},
                          reverse_dns={"enabled": True, "nameservers": [dns_srv.nameserver], "timeout": 5.0,
                                       "max_wait": 0.5})
        async with running(cfg) as svc:
            t0 = time.monotonic()
            send_udp(svc.listeners[0].cfg.port, [encode_v5([rec(APP, DB, 40000), rec(PUBLIC, DB, 40001),
                                                            rec(SILENT, DB, 40002)], 3000, int(time.time()), 0)])
            assert await be.wait_flows_async(3, 5)
            waited = time.monotonic() - t0
    by_src = {f["source"]["ip"]: f for f in be.flows}
    assert by_src[APP]["source"]["reverse_dns_hostname"] == "app-1.example.internal"
    assert by_src[APP]["destination"]["reverse_dns_hostname"] == "db-2.example.internal"
    assert "reverse_dns_hostname" not in by_src[PUBLIC]["source"]      # public: never looked up
    assert dns_srv.query_count(PUBLIC) == 0
    assert "reverse_dns_hostname" not in by_src[SILENT]["source"]      # no answer within the bound
    assert by_src[SILENT]["destination"]["reverse_dns_hostname"] == "db-2.example.internal"
    assert waited < 0.2 + 0.5 + 2.0                                   # tick + max_wait + slack, not the 5 s timeout
    assert dns_srv.query_count(DB) == 1                               # one query per address, then the cache


@pytest.mark.slow
async def test_second_window_uses_the_cache(dns_srv: DnsTestServer) -> None:
    with Backend() as be:
        dns_srv.add_ptr(DB, "db-2.example.internal")
        dns_srv.add_ptr(APP, "app-1.example.internal")
        cfg = make_config(be.url, aggregator={"flush_interval": 0.5, "flush_tick": 0.1},
                          reverse_dns={"enabled": True, "nameservers": [dns_srv.nameserver]})
        async with running(cfg) as svc:
            for i in range(3):
                send_udp(svc.listeners[0].cfg.port, [encode_v5([rec(APP, DB, 40000)], 3000, int(time.time()), i)])
                await be.wait_flows_async(i + 1, 5)
                await trio.sleep(0.6)
    assert len(be.flows) == 3
    assert all(f["destination"].get("reverse_dns_hostname") == "db-2.example.internal" for f in be.flows)
    assert dns_srv.query_count(DB) == 1 and dns_srv.query_count(APP) == 1
