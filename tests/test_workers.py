"""workers > 1: several processes on one port, every exporter's flows delivered, one /metrics view."""
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
from flowpipe.supervisor import merge_metrics
from tests.support.backend import Backend
from tests.support.service_helpers import http_get


def free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


@pytest.mark.slow
def test_two_workers_share_the_port_and_deliver_everything(tmp_path: Path) -> None:
    port, mport = free(socket.SOCK_DGRAM), free(socket.SOCK_STREAM)
    with Backend() as be:
        cfg = tmp_path / "f.toml"
        cfg.write_text(f'[[listeners]]\nflow_type = "netflow5"\nbind_host = "127.0.0.1"\nport = {port}\nworkers = 2\n'
                       f'[aggregator]\nflush_interval = 1\n[forwarder]\nurl = "{be.url}"\n'
                       f'[metrics]\nlisten = "127.0.0.1:{mport}"\n')
        proc = subprocess.Popen([sys.executable, "-m", "flowpipe.cli", "run", "--config", str(cfg)],
                                stderr=subprocess.PIPE, text=True, env={**os.environ})
        try:
            deadline = time.monotonic() + 30
            while http_get_safe(mport, "/healthz") != 200:
                assert time.monotonic() < deadline and proc.poll() is None, "workers did not become healthy"
                time.sleep(0.2)
            exporters = 40
            for e in range(exporters):  # distinct source addresses and ports: the kernel spreads them
                recs = [DefaultRecord(bytes([10, 7, e, 1]), bytes([10, 7, 0, 2]), bytes(4), 1, 2, 1, 100, 0, 10,
                                      1000 + i, 80, 0x10, 6, 0, 0, 0, 0, 0) for i in range(10)]
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((f"127.0.20.{e + 1}", 0))
                    s.sendto(encode_v5(recs, 100, int(time.time()), 0), ("127.0.0.1", port))
            assert be.wait_flows(exporters * 10, 20)
            text = http_get(f"http://127.0.0.1:{mport}/metrics")[1]
            workers = {line.split('worker="')[1].split('"')[0] for line in text.splitlines()
                       if line.startswith("flowpipe_datagrams_received_total{")}
            assert workers == {"0", "1"}                      # both processes received some
            assert metric_sum(text, "flowpipe_datagrams_received_total") == exporters
            assert metric_sum(text, "flowpipe_flows_decoded_total") == exporters * 10
            assert metric_sum(text, "flowpipe_workers_up") == 2
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert len(be.flows) == exporters * 10 and sum(f["bytes"] for f in be.flows) == exporters * 1000


def http_get_safe(port: int, path: str) -> int:
    try:
        return http_get(f"http://127.0.0.1:{port}{path}")[0]
    except OSError:
        return 0


def test_merge_adds_a_worker_label_and_keeps_types() -> None:
    a = ('# HELP flowpipe_x_total x\n# TYPE flowpipe_x_total counter\nflowpipe_x_total{flow_type="ipfix"} 3.0\n'
         '# HELP flowpipe_g g\n# TYPE flowpipe_g gauge\nflowpipe_g 2.0\n')
    b = '# HELP flowpipe_x_total x\n# TYPE flowpipe_x_total counter\nflowpipe_x_total{flow_type="ipfix"} 4.0\n'
    out = merge_metrics({0: a, 1: b})
    assert 'flowpipe_x_total{flow_type="ipfix",worker="0"} 3.0' in out
    assert 'flowpipe_x_total{flow_type="ipfix",worker="1"} 4.0' in out
    assert 'flowpipe_g{worker="0"} 2.0' in out
    assert out.count("# TYPE flowpipe_x counter") == 1
