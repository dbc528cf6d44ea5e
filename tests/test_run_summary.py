"""``flowpipe run`` says where flows go and how to stop once started, and the run's totals when it
stops (issue #19). The real CLI, real sockets, SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flowpipe.export import DefaultRecord, encode_v5


def start(cfg: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPIPE_")}
    proc = subprocess.Popen([sys.executable, "-m", "flowpipe.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "event=started" in line:
            return proc, line
    raise AssertionError("no started line: " + proc.communicate(timeout=60)[1])


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_started_summary_and_stopped_totals(tmp_path: Path) -> None:
    port = udp_port()
    cfg = tmp_path / "flowpipe.toml"
    cfg.write_text(f'[[listeners]]\nflow_type = "netflow5"\nbind_host = "127.0.0.1"\nport = {port}\n'
                   '[aggregator]\nflush_interval = 60\n[metrics]\nlisten = "127.0.0.1:0"\n')
    proc, started = start(cfg)
    try:
        assert f"netflow5 udp 127.0.0.1:{port} workers=1" in started
        assert "flows_to=stdout" in started
        assert "flush_interval=60s" in started
        assert "metrics=127.0.0.1:" in started
        assert 'stop="SIGTERM or Ctrl-C stops after a final flush"' in started
        up = 1_000_000
        recs = [DefaultRecord(bytes([10, 0, 0, 1]), bytes([10, 0, 0, i]), bytes(4), 1, 2, 1, 100, up - 2000,
                              up - 1000, 40000, 443, 0x10, 6, 0, 0, 0, 24, 24) for i in range(1, 4)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(encode_v5(recs, up, int(time.time()), 0), ("127.0.0.1", port))
            s.sendto(b"", ("127.0.0.1", port))
        mport = int(started.split("metrics=127.0.0.1:")[1].split()[0])
        for _ in range(600):  # until both datagrams were read, so the stop does not race them
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=30) as r:
                if b'flowpipe_datagrams_received_total{flow_type="netflow5"} 2.0' in r.read():
                    break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    stopped = [ln for ln in err.splitlines() if "event=stopped" in ln]
    assert len(stopped) == 1, err
    flows = [ln for ln in out.splitlines() if ln.strip()]
    assert "datagrams=2" in stopped[0]
    assert "flows_decoded=3" in stopped[0]
    assert f"flows_delivered={len(flows)}" in stopped[0]
    assert "flows_spooled=0" in stopped[0] and "flows_dropped=0" in stopped[0]


@pytest.mark.slow
def test_started_summary_masks_url_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "flowpipe.toml"
    cfg.write_text(f'[[listeners]]\nflow_type = "ipfix"\nbind_host = "127.0.0.1"\nport = {udp_port()}\n'
                   '[metrics]\nlisten = ""\n'
                   f'[forwarder]\nurl = "http://user:hunter2@127.0.0.1:9/intake?api_key=s3cret&v=1"\n'
                   f'spool_dir = "{tmp_path / "spool"}"\nstop_timeout = 0\n')
    proc, started = start(cfg)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert "hunter2" not in started and "s3cret" not in started
    assert "http://user:***@127.0.0.1:9/intake?api_key=***&v=1" in started
    assert f"spool {tmp_path / 'spool'}" in started
    assert "metrics=off" in started
