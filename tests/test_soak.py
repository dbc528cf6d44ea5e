"""The load/soak scenario of bench/soak.py, short: a real ``flowpipe run`` flooded for 20 s.

1,000 exporters on their own loopback addresses (v5, v9, IPFIX, sFlow) plus garbage at a rate
the service takes on a small CI machine; the scenario's own invariants decide (process up,
RSS cap, /metrics responsive, datagram and flow accounting, clean SIGTERM). The full run is
``bench/soak.py`` (3 minutes at 20,000 datagrams/s by default).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


@pytest.mark.slow
def test_short_soak_keeps_every_invariant() -> None:
    proc = subprocess.run([sys.executable, str(SOAK), "--minutes", "0.33", "--exporters", "1000", "--rate", "4000",
                           "--quiet", "--scrape-max", "5", "--rss-cap-mb", "768"],
                          capture_output=True, text=True, timeout=240)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert "FAIL" not in proc.stdout, tail
