"""The forwarder inside the real process: an outage across a restart loses nothing (disk spool)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowpipe.export import DefaultRecord, encode_v5
from tests.support.backend import Backend
from tests.support.service_helpers import http_get


def free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cfg: Path, mport: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "flowpipe.cli", "run", "--config", str(cfg)],
                            stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.monotonic() + 20
    while True:
        try:
            if http_get(f"http://127.0.0.1:{mport}/healthz")[0] == 200:
                return proc
        except OSError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "flowpipe did not start"
        time.sleep(0.1)


def metric(mport: int, name: str) -> float:
    text = http_get(f"http://127.0.0.1:{mport}/metrics")[1]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.slow
def test_flows_received_during_an_outage_arrive_after_a_restart(tmp_path: Path) -> None:
    port, mport = free(socket.SOCK_DGRAM), free(socket.SOCK_STREAM)
    records = [DefaultRecord(bytes([10, 8, 0, i]), bytes([10, 8, 1, 1]), bytes(4), 1, 2, 2, 1000 + i, 0, 10,
                             2000 + i, 443, 0x18, 6, 0, 0, 0, 24, 24) for i in range(30)]
    with Backend() as be:
        be.stop()  # the backend is down from the start
        cfg = tmp_path / "f.toml"
        cfg.write_text(f'[[listeners]]\nflow_type = "netflow5"\nbind_host = "127.0.0.1"\nport = {port}\n'
                       f'[aggregator]\nflush_interval = 0.5\n'
                       f'[forwarder]\nurl = "{be.url}"\nspool_dir = "{tmp_path / "spool"}"\nretries = 1\n'
                       f'retry_initial = 0.1\nretry_max = 0.2\nstop_timeout = 1\n'
                       f'[metrics]\nlisten = "127.0.0.1:{mport}"\n')
        proc = start(cfg, mport)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(encode_v5(records, 100, int(time.time()), 0), ("127.0.0.1", port))
            deadline = time.monotonic() + 15
            while metric(mport, "flowpipe_flows_flushed_total") < 30:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            # accounting holds while nothing can be delivered: flushed = sent + pending + dropped
            assert metric(mport, "flowpipe_forwarder_flows_sent_total") == 0
            assert metric(mport, "flowpipe_forwarder_flows_pending") == 30
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert any((tmp_path / "spool").rglob("*")), "nothing was spooled at shutdown"
        be.start()
        proc = start(cfg, mport)  # the next start sends what the previous one spooled
        try:
            assert be.wait_flows(30, 20)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert len(be.flows) == 30 and sum(f["bytes"] for f in be.flows) == sum(1000 + i for i in range(30))
