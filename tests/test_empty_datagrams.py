"""Zero-length UDP datagrams (issue #19): counted as received and invalid (reason="empty"), so the
datagram identity received = decoded + invalid + held + dropped holds with them. The real CLI on a
real socket; the counters are read from its /metrics endpoint."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowpipe.export import DefaultRecord, encode_v5
from tests.support.service_helpers import free_port, start_run


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
                            if s.labels else "")
            out[key] = s.value
    return out


def total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


@pytest.mark.slow
def test_empty_datagrams_counted_and_identity_holds(tmp_path: Path) -> None:
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    cfg = tmp_path / "flowpipe.toml"
    cfg.write_text(f'[[listeners]]\nflow_type = "netflow5"\nbind_host = "127.0.0.1"\nport = {udp}\n'
                   f'[metrics]\nlisten = "127.0.0.1:{http}"\n'
                   f'[forwarder]\nfile = "{tmp_path / "flows.json"}"\n')
    proc = start_run(cfg, stdout=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "event=metrics_listening" in line:
                break
        up = 1_000_000
        rec = DefaultRecord(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes(4), 1, 2, 1, 100, up - 2000,
                            up - 1000, 40000, 443, 0x10, 6, 0, 0, 0, 24, 24)
        good = [encode_v5([rec], up, int(time.time()), seq) for seq in range(5)]
        sent = [*good, b"", b"", b"\x00\x05garbage", b"", *good[:1]]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for p in sent:
                s.sendto(p, ("127.0.0.1", udp))
        samples: dict[str, float] = {}
        for _ in range(600):  # until all are counted (not a timing assertion: no bound on how fast)
            samples = scrape(http)
            if total(samples, "flowpipe_datagrams_received_total") >= len(sent):
                break
            time.sleep(0.1)
        received = total(samples, "flowpipe_datagrams_received_total")
        assert received == len(sent)
        assert samples["flowpipe_datagrams_invalid_total{flow_type=netflow5,reason=empty}"] == 3
        accounted = (total(samples, "flowpipe_datagrams_decoded_total")
                     + total(samples, "flowpipe_datagrams_invalid_total")
                     + total(samples, "flowpipe_datagrams_held")
                     + total(samples, "flowpipe_datagrams_dropped_total"))
        for _ in range(600):  # the decoder may still be working on the last batch
            if accounted == received:
                break
            time.sleep(0.1)
            samples = scrape(http)
            accounted = (total(samples, "flowpipe_datagrams_decoded_total")
                         + total(samples, "flowpipe_datagrams_invalid_total")
                         + total(samples, "flowpipe_datagrams_held")
                         + total(samples, "flowpipe_datagrams_dropped_total"))
        assert accounted == received, samples
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0
