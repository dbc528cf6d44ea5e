"""The forwarder against a real HTTP backend: batching, retries, outages, rejects, shutdown, spool.

Every test checks the accounting: flows handed to run + recovered from the spool =
sent + pending + dropped{stage="forwarder"}.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from flowpipe.config import ForwarderConfig
from flowpipe.forward import Forwarder, pack
from flowpipe.forward.spool import HEADER
from flowpipe.metrics import Metrics
from tests.support.backend import HANG, Backend, sample_flows, seqs


def fcfg(url: str, **kw: Any) -> ForwarderConfig:
    """Short intervals so outages and retries play out in a fraction of a second."""
    base: dict[str, Any] = dict(url=url, retry_initial=0.02, retry_max=0.1, retries=2, timeout=1.0,
                                stop_timeout=2.0, spool_fsync=False)
    return ForwarderConfig(**{**base, **kw})


def value(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value("flowpipe_" + name, labels) or 0.0


def dropped(m: Metrics, reason: str | None = None) -> float:
    total = 0.0
    for fam in m.registry.collect():
        if fam.name != "flowpipe_flows_dropped":
            continue
        for s in fam.samples:
            if s.name.endswith("_total") and s.labels["stage"] == "forwarder" and reason in (None, s.labels["reason"]):
                total += s.value
    return total


def check_accounting(m: Metrics, handed: int) -> None:
    left = handed + value(m, "forwarder_flows_recovered_total")
    right = value(m, "forwarder_flows_sent_total") + value(m, "forwarder_flows_pending") + dropped(m)
    assert left == right, (left, right)


class Feeder:
    """A running forwarder and the channel into it; counts what was handed over."""

    def __init__(self, fw: Forwarder, send: trio.MemorySendChannel[list[dict[str, Any]]]) -> None:
        self.fw, self.send, self.handed = fw, send, 0

    async def feed(self, start: int, n: int, batch: int = 500) -> None:
        for i in range(start, start + n, batch):
            flows = sample_flows(i, min(batch, start + n - i))
            await self.send.send(flows)
            self.handed += len(flows)
        await trio.testing.wait_all_tasks_blocked()  # run() has processed what it took


@asynccontextmanager
async def running(cfg: ForwarderConfig, m: Metrics) -> AsyncIterator[Feeder]:
    """Run a Forwarder; leaving the block closes its input and waits for run() to return."""
    fw = Forwarder(cfg, m)
    send, recv = trio.open_memory_channel[list[dict[str, Any]]](0)  # handed over = taken by run()
    async with trio.open_nursery() as n:
        await n.start(fw.run, recv)
        feeder = Feeder(fw, send)
        try:
            yield feeder
        finally:
            await send.aclose()


async def until(cond: Any, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


def assert_exactly_once(be: Backend, expected: range) -> None:
    got = seqs(be.snapshot()[0])
    assert len(got) == len(set(got)), "duplicates delivered"
    assert sorted(got) == list(expected)
    assert sum(f["bytes"] for f in be.snapshot()[0]) == sum(1000 + i for i in expected)


# ---- the happy path ----------------------------------------------------------------------------

@pytest.mark.slow
async def test_json_gzip_batches_headers_and_one_connection() -> None:
    m = Metrics()
    with Backend() as be:
        cfg = fcfg(be.url, max_batch_flows=1200, headers={"DD-API-KEY": "k1"})
        async with running(cfg, m) as f:
            await f.feed(0, 10_000, batch=500)
        assert_exactly_once(be, range(10_000))
        reqs = be.snapshot()[1]
    assert all(r.status == 200 and 0 < r.flows <= 1200 for r in reqs)
    assert len({r.connection for r in reqs}) == 1, "connection not reused"
    h = reqs[0].headers
    assert (h["Content-Type"], h["Content-Encoding"], h["DD-API-KEY"]) == ("application/json", "gzip", "k1")
    assert h["User-Agent"].startswith("flowpipe/")
    assert len({r.headers["Idempotency-Key"] for r in reqs}) == len(reqs)
    assert value(m, "forwarder_requests_total", status="200") == len(reqs)
    assert value(m, "forwarder_flows_sent_total") == 10_000
    assert value(m, "forwarder_flows_pending") == 0
    check_accounting(m, 10_000)


async def test_msgpack_uncompressed() -> None:
    m = Metrics()
    with Backend() as be:
        async with running(fcfg(be.url, format="msgpack", compression="none"), m) as f:
            await f.feed(0, 1000)
        assert_exactly_once(be, range(1000))
        h = be.requests[0].headers
    assert h["Content-Type"] == "application/msgpack" and "Content-Encoding" not in h
    check_accounting(m, 1000)


async def test_big_batch_is_split() -> None:
    m = Metrics()
    with Backend() as be:
        async with running(fcfg(be.url, max_batch_flows=300), m) as f:
            await f.feed(0, 1000, batch=1000)
        assert_exactly_once(be, range(1000))
        assert [r.flows for r in be.requests] == [300, 300, 300, 100]


# ---- retries -----------------------------------------------------------------------------------

@pytest.mark.slow
async def test_503_with_retry_after_is_honoured() -> None:
    m = Metrics()
    with Backend() as be:
        be.fail(2, status=503, retry_after="1")
        async with running(fcfg(be.url, retries=5), m) as f:
            await f.feed(0, 100)
            await until(lambda: be.count() == 100)
        reqs = be.snapshot()[1]
        assert_exactly_once(be, range(100))
    assert [r.status for r in reqs] == [503, 503, 200]
    assert reqs[1].time - reqs[0].time >= 0.95 and reqs[2].time - reqs[1].time >= 0.95
    assert value(m, "forwarder_requests_total", status="503") == 2
    check_accounting(m, 100)


@pytest.mark.slow
async def test_429_with_http_date_and_5xx_retried() -> None:
    import email.utils
    import time
    m = Metrics()
    with Backend() as be:
        be.fail(1, status=429, retry_after=email.utils.formatdate(time.time() + 2, usegmt=True))
        be.fail(1, status=500)
        be.fail(1, status=408)
        async with running(fcfg(be.url, retries=5), m) as f:
            await f.feed(0, 10)
            await until(lambda: be.count() == 10)
        reqs = be.snapshot()[1]
    assert [r.status for r in reqs] == [429, 500, 408, 200]
    assert reqs[1].time - reqs[0].time >= 0.9  # HTTP-date has whole seconds: at least ~1 s
    check_accounting(m, 10)


async def test_400_drops_only_that_batch(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics()
    with Backend() as be:
        async with running(fcfg(be.url), m) as f:
            await f.feed(0, 100)
            await until(lambda: be.count() == 100)
            be.fail(1, status=400)
            await f.feed(100, 100)
            await until(lambda: dropped(m, "rejected") == 100)
            await f.feed(200, 100)
            await until(lambda: be.count() == 200)
        flows, reqs = be.snapshot()
    assert sorted(seqs(flows)) == list(range(100)) + list(range(200, 300))
    assert [r.status for r in reqs] == [200, 400, 200]
    assert seqs(reqs[1].rejected or []) == list(range(100, 200))
    assert value(m, "forwarder_requests_total", status="400") == 1
    assert dropped(m) == 100
    assert any(r.getMessage() == "batch_rejected" and getattr(r, "fields", {}).get("status") == 400
               for r in caplog.records)
    check_accounting(m, 300)


async def test_hang_past_timeout_is_retried() -> None:
    m = Metrics()
    with Backend() as be:
        be.hang(1, seconds=5)
        async with running(fcfg(be.url, timeout=0.4), m) as f:
            await f.feed(0, 50)
            await until(lambda: be.count() == 50)
        reqs = be.snapshot()[1]
        assert_exactly_once(be, range(50))
    assert [r.status for r in reqs] == [HANG, 200]
    assert reqs[0].headers["Idempotency-Key"] == reqs[1].headers["Idempotency-Key"]
    assert value(m, "forwarder_requests_total", status="timeout") == 1
    check_accounting(m, 50)


async def test_idempotency_key_survives_the_spool(tmp_path: Path) -> None:
    m = Metrics()
    with Backend() as be:
        be.hang(1, seconds=5)   # the backend may have seen this one: its retry must carry the same key
        cfg = fcfg(be.url, timeout=0.3, retries=0, spool_dir=str(tmp_path))
        async with running(cfg, m) as f:
            await f.feed(0, 300, batch=100)
            await until(lambda: be.count() == 300)
        reqs = be.snapshot()[1]
    assert value(m, "flows_spooled_total") > 0
    assert reqs[0].status == HANG and reqs[1].status == 200
    assert reqs[0].headers["Idempotency-Key"] == reqs[1].headers["Idempotency-Key"]
    assert seqs(reqs[0].rejected or []) == seqs(be.flows[:reqs[1].flows])


# ---- outages -----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("spool", [True, False])
async def test_outage_delivers_everything_once(tmp_path: Path, spool: bool) -> None:
    m = Metrics()
    be = Backend().start()
    try:
        cfg = fcfg(be.url, spool_dir=str(tmp_path) if spool else "", max_batch_flows=1000)
        async with running(cfg, m) as f:
            await f.feed(0, 2000)
            await until(lambda: value(m, "forwarder_flows_sent_total") == 2000)  # the 200s arrived, too
            be.stop()
            await f.feed(2000, 3000)
            await until(lambda: value(m, "forwarder_backend_up") == 0)
            await f.feed(5000, 3000)
            check_accounting(m, f.handed)
            if spool:  # while down, batches go to disk
                await until(lambda: value(m, "forwarder_queue_flows") == 0)
                assert value(m, "flows_spooled_total") == 6000
                assert len(list(tmp_path.glob("*.fps"))) >= 6
                assert value(m, "spool_bytes") > 0
            assert value(m, "forwarder_flows_pending") == 6000
            be.start()
            await until(lambda: be.count() == 8000, timeout=10)
            check_accounting(m, f.handed)
        assert_exactly_once(be, range(8000))
        if spool:
            assert seqs(be.snapshot()[0]) == list(range(8000)), "not delivered in order"
            assert list(tmp_path.glob("*.fps")) == []
        assert value(m, "forwarder_backend_up") == 1
        assert value(m, "forwarder_requests_total", status="connect_error") > 0
        assert dropped(m) == 0 and value(m, "forwarder_flows_pending") == 0
        check_accounting(m, 8000)
    finally:
        be.stop()


async def test_intake_never_blocks_on_a_hanging_backend() -> None:
    m = Metrics()
    with Backend() as be:
        be.hang(100, seconds=60)
        async with running(fcfg(be.url, timeout=60.0, stop_timeout=0.1), m) as f:
            with trio.fail_after(30):  # (a bound on hanging forever, not a speed check)
                await f.feed(0, 20_000, batch=500)
            # all 40 batches were handed over while the first request still hangs: no request ended
            assert not [s for fam in m.registry.collect() if fam.name == "flowpipe_forwarder_requests"
                        for s in fam.samples if s.name.endswith("_total") and s.value]
            await until(lambda: value(m, "forwarder_queue_flows") == 20_000)
    check_accounting(m, 20_000)


async def test_memory_queue_full_drops_oldest_without_spool() -> None:
    m = Metrics()
    be = Backend().start()
    be.stop()
    try:
        async with running(fcfg(be.url, queue_max_flows=1000, max_batch_flows=200), m) as f:
            await f.feed(0, 200, batch=200)       # taken by the sender: in flight, kept
            await until(lambda: value(m, "forwarder_requests_total", status="connect_error") > 0)
            await f.feed(200, 2800, batch=200)
            check_accounting(m, f.handed)
            assert value(m, "forwarder_queue_flows") <= 1000 + 200
            be.start()
            await until(lambda: value(m, "forwarder_flows_pending") == 0, timeout=10)
        got = seqs(be.snapshot()[0])
        assert len(got) == len(set(got))
        assert set(range(2000, 3000)) <= set(got), "the newest flows must survive"
        assert dropped(m, "queue_full") == 3000 - len(got) > 0
        check_accounting(m, 3000)
    finally:
        be.stop()


async def test_spool_full_drops_oldest(tmp_path: Path) -> None:
    m = Metrics()
    be = Backend().start()
    be.stop()
    try:
        cfg = fcfg(be.url, spool_dir=str(tmp_path), spool_max_bytes=200_000, max_batch_flows=100)
        async with running(cfg, m) as f:
            await f.feed(0, 100, batch=100)
            await until(lambda: value(m, "forwarder_backend_up") == 0)
            await f.feed(100, 3900, batch=100)
            await until(lambda: value(m, "forwarder_queue_flows") == 0)
            assert value(m, "spool_bytes") <= 200_000
            check_accounting(m, f.handed)
            be.start()
            await until(lambda: value(m, "forwarder_flows_pending") == 0, timeout=10)
        got = seqs(be.snapshot()[0])
        assert len(got) == len(set(got)) and got == sorted(got)
        assert set(range(3900, 4000)) <= set(got)
        assert dropped(m, "spool_full") == 4000 - len(got) > 0
        check_accounting(m, 4000)
    finally:
        be.stop()


# ---- shutdown ----------------------------------------------------------------------------------

async def test_shutdown_delivers_what_is_left() -> None:
    m = Metrics()
    with Backend() as be:
        async with running(fcfg(be.url), m) as f:
            await f.feed(0, 5000)
        assert be.count() == 5000  # run() returned only after delivering
    check_accounting(m, 5000)


async def test_shutdown_during_outage_spools_and_next_run_sends(tmp_path: Path) -> None:
    m1 = Metrics()
    be = Backend().start()
    be.stop()
    try:
        cfg = fcfg(be.url, spool_dir=str(tmp_path), stop_timeout=0.5, retry_max=5.0, retry_initial=2.0)
        start = trio.current_time()
        async with running(cfg, m1) as f:
            await f.feed(0, 3000)
        assert trio.current_time() - start < 2.0, "shutdown took longer than stop_timeout allows"
        assert value(m1, "forwarder_flows_pending") == 3000 and dropped(m1) == 0
        assert value(m1, "flows_spooled_total") == 3000
        check_accounting(m1, 3000)

        m2 = Metrics()
        be.start()
        async with running(cfg, m2) as f:
            assert value(m2, "forwarder_flows_recovered_total") == 3000
            await f.feed(3000, 500)
            await until(lambda: be.count() == 3500)
        assert_exactly_once(be, range(3500))
        assert seqs(be.snapshot()[0]) == list(range(3500))
        check_accounting(m2, 500)
    finally:
        be.stop()


async def test_shutdown_without_spool_counts_drops() -> None:
    m = Metrics()
    be = Backend().start()
    be.stop()
    try:
        async with running(fcfg(be.url, stop_timeout=0.3), m) as f:
            await f.feed(0, 1000)
        assert dropped(m, "shutdown") == 1000 and value(m, "forwarder_flows_pending") == 0
        check_accounting(m, 1000)
    finally:
        be.stop()


async def test_corrupt_spool_file_is_counted_and_skipped(tmp_path: Path) -> None:
    be = Backend().start()
    be.stop()
    try:
        cfg = fcfg(be.url, spool_dir=str(tmp_path), stop_timeout=0.0, max_batch_flows=100)
        m1 = Metrics()
        async with running(cfg, m1) as f:
            await f.feed(0, 500, batch=100)
        files = sorted(tmp_path.glob("*.fps"))
        assert len(files) == 5
        data = bytearray(files[1].read_bytes())   # same length, one flipped byte: found when read
        data[HEADER.size + 10] ^= 0x55
        files[1].write_bytes(bytes(data))
        files[3].write_bytes(files[3].read_bytes()[:-7])   # torn: found when the spool is opened
        be.start()
        m2 = Metrics()
        async with running(cfg, m2):
            assert value(m2, "spool_files_corrupt_total") == 1
            await until(lambda: value(m2, "forwarder_flows_pending") == 0)
        assert value(m2, "spool_files_corrupt_total") == 2
        assert dropped(m2, "spool_corrupt") == 100
        assert seqs(be.snapshot()[0]) == list(range(100)) + list(range(200, 300)) + list(range(400, 500))
        check_accounting(m2, 0)
    finally:
        be.stop()


async def test_cancelled_run_still_spools_memory(tmp_path: Path) -> None:
    m = Metrics()
    be = Backend().start()
    be.stop()
    try:
        fw = Forwarder(fcfg(be.url, spool_dir=str(tmp_path), retries=50), m)
        send, recv = trio.open_memory_channel[list[dict[str, Any]]](0)
        async with trio.open_nursery() as n:
            await n.start(fw.run, recv)
            await send.send(sample_flows(0, 700))
            await send.send(sample_flows(700, 300))
            await trio.testing.wait_all_tasks_blocked()
            assert value(m, "flows_spooled_total") == 0   # still retrying: nothing on disk yet
            n.cancel_scope.cancel()                       # not a clean close: cancelled from outside
        assert value(m, "flows_spooled_total") == 1000 and value(m, "forwarder_flows_pending") == 1000
        check_accounting(m, 1000)
    finally:
        be.stop()


@pytest.mark.slow
async def test_failure_logs_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics()
    with Backend() as be:
        be.fail(30, status=503)
        async with running(fcfg(be.url, retries=100, retry_initial=0.001, retry_max=0.002), m) as f:
            await f.feed(0, 10)
            await until(lambda: be.count() == 10)
    lines = [r for r in caplog.records if r.getMessage() == "backend_refused"]
    assert 1 <= len(lines) <= 5
    assert value(m, "log_messages_suppressed_total", event="backend_refused") == 30 - len(lines)


# ---- local sinks -------------------------------------------------------------------------------

async def test_stdout_when_no_url(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    m = Metrics()
    async with running(fcfg(""), m) as f:
        await f.feed(0, 30, batch=10)
    lines = capsys.readouterr().out.splitlines()
    assert seqs([json.loads(x) for x in lines]) == list(range(30))
    check_accounting(m, 30)


async def test_file_instead_of_stdout_and_beside_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    m = Metrics()
    async with running(fcfg("", file=str(tmp_path / "a.jsonl")), m) as f:
        await f.feed(0, 30, batch=10)
    assert capsys.readouterr().out == ""
    assert seqs([json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]) == list(range(30))
    check_accounting(m, 30)
    m = Metrics()
    with Backend() as be:
        async with running(fcfg(be.url, file=str(tmp_path / "b.jsonl")), m) as f:
            await f.feed(0, 30, batch=10)
        assert be.count() == 30
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 30
    assert value(m, "forwarder_file_flows_total") == 30


# ---- configuration errors and TLS --------------------------------------------------------------

@pytest.mark.parametrize("kw,key", [
    (dict(tls_ca_file="/nonexistent/ca.pem"), "forwarder.tls_ca_file"),
    (dict(tls_client_cert="/nonexistent/c.pem", tls_client_key="/nonexistent/k.pem"), "forwarder.tls_client_cert"),
    (dict(tls_client_cert="/etc/hostname"), "forwarder.tls_client_key"),
    (dict(spool_dir="/proc/version/spool"), "forwarder.spool_dir"),
    (dict(file="/nonexistent/dir/flows.jsonl"), "forwarder.file"),
])
def test_bad_paths_name_the_key(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Forwarder(fcfg("https://backend.example/", **kw), Metrics())


def test_spool_dir_in_use(tmp_path: Path) -> None:
    first = Forwarder(fcfg("http://127.0.0.1:1/", spool_dir=str(tmp_path)), Metrics())
    with pytest.raises(ValueError, match="in use"):
        Forwarder(fcfg("http://127.0.0.1:1/", spool_dir=str(tmp_path)), Metrics())
    del first


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    (d / "server.pem").write_bytes((d / "cert.pem").read_bytes() + (d / "key.pem").read_bytes())
    return d


async def test_https_with_ca_file(tls_files: Path) -> None:
    m = Metrics()
    with Backend(certfile=str(tls_files / "server.pem")) as be:
        async with running(fcfg(be.url, tls_ca_file=str(tls_files / "cert.pem")), m) as f:
            await f.feed(0, 100)
        assert be.count() == 100


async def test_https_verify_fails_without_ca_and_passes_with_verify_off(tls_files: Path) -> None:
    with Backend(certfile=str(tls_files / "server.pem")) as be:
        m = Metrics()
        async with running(fcfg(be.url, stop_timeout=0.3), m) as f:
            await f.feed(0, 10)
            await until(lambda: value(m, "forwarder_requests_total", status="connect_error") > 0)
        assert be.count() == 0
        m = Metrics()
        async with running(fcfg(be.url, tls_verify=False), m) as f:
            await f.feed(0, 10)
        assert be.count() == 10


def test_spool_lock_released_after_run(tmp_path: Path) -> None:
    """A Forwarder that ran to the end releases its spool dir for the next one."""
    async def once() -> None:
        async with running(fcfg("http://127.0.0.1:9/", spool_dir=str(tmp_path), stop_timeout=0), Metrics()):
            pass
    trio.run(once)
    trio.run(once)
    assert os.path.exists(tmp_path / "spool.lock")


# ---- batches that come as their request body (the renderer packs them for gzip'd HTTP) ----------

async def feed_packed(f: Feeder, start: int, n: int, batch: int, fmt: str = "json") -> None:
    for i in range(start, start + n, batch):
        flows = sample_flows(i, min(batch, start + n - i))
        await f.send.send(pack(flows, fmt))  # type: ignore[arg-type]
        f.handed += len(flows)
    await trio.testing.wait_all_tasks_blocked()


@pytest.mark.slow  # ~2 s: the first request hangs until its 1.5 s timeout, so that the batches queue up behind it
async def test_packed_batches_are_posted_whole_and_exactly_once() -> None:
    """A packed batch is posted as its body, never merged with the next (its body is made); a batch
    of flows among them still is; each arrives whole, exactly once, and the accounting holds."""
    m = Metrics()
    with Backend() as be:
        be.hang(1, seconds=3)
        async with running(fcfg(be.url, timeout=1.5, max_batch_flows=2000), m) as f:
            await feed_packed(f, 0, 6_000, batch=1000)
            await f.feed(6_000, 1_000, batch=500)
            await feed_packed(f, 7_000, 5_000, batch=1000)
            assert value(m, "forwarder_queue_flows") == 12_000
            check_accounting(m, 12_000)
            await until(lambda: value(m, "forwarder_flows_pending") == 0, timeout=15)
        assert_exactly_once(be, range(12_000))
        sizes = [r.flows for r in be.snapshot()[1] if r.status == 200]
        assert sizes.count(1000) == 12, sizes  # 11 packed batches, and the two of 500 merged into one request
    check_accounting(m, 12_000)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_packed_batches_spill_to_the_spool_and_arrive_whole(tmp_path: Path, fmt: str) -> None:
    m = Metrics()
    be = Backend().start()
    try:
        be.hang(1, seconds=3)
        async with running(fcfg(be.url, timeout=1.5, max_batch_flows=1000, format=fmt,
                                spool_dir=str(tmp_path / "spool")), m) as f:
            await feed_packed(f, 0, 8_000, batch=1000, fmt=fmt)
            be.stop()  # the retries fail: down, and everything waiting goes to disk
            await until(lambda: value(m, "forwarder_backend_up") == 0 and value(m, "forwarder_queue_flows") == 0,
                        timeout=15)
            assert value(m, "flows_spooled_total") == 8_000
            check_accounting(m, 8_000)
            be.start()
            await until(lambda: value(m, "forwarder_flows_pending") == 0, timeout=15)
        assert_exactly_once(be, range(8_000))
        check_accounting(m, 8_000)
    finally:
        be.stop()


async def test_packed_batches_are_copied_to_the_file_as_json_lines(tmp_path: Path) -> None:
    m = Metrics()
    path = tmp_path / "flows.jsonl"
    with Backend() as be:
        async with running(fcfg(be.url, file=str(path)), m) as f:
            await feed_packed(f, 0, 3_000, batch=1000)
            await until(lambda: value(m, "forwarder_flows_pending") == 0 and value(m, "forwarder_file_flows_total")
                        == 3_000, timeout=15)
        assert_exactly_once(be, range(3_000))
    assert [json.loads(line) for line in path.read_text().splitlines()] == sample_flows(0, 3_000)
