"""``flowpipe decode --payload`` prints flows as the backend receives them, and a hint when no
datagram matched ``--port`` (issue #19). The real CLI on the repository's captures."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ipfix_pmacct_nfprobe.pcap"


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowpipe.cli", "decode", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_payload_is_the_renderers_form_one_per_record() -> None:
    raw = decode(str(CAPTURE))
    payload = decode("--payload", str(CAPTURE))
    assert raw.returncode == payload.returncode == 0, payload.stderr
    records = [json.loads(ln) for ln in raw.stdout.splitlines()]
    flows = [json.loads(ln) for ln in payload.stdout.splitlines()]
    assert records and len(flows) == len(records)  # no aggregation
    for rec, flow in zip(records, flows, strict=True):
        assert flow["type"] == "ipfix"
        assert flow["ip_protocol"] in ("TCP", "UDP", "ICMP", "IPv6-ICMP") and isinstance(rec["ip_protocol"], int)
        assert flow["ether_type"] in ("IPv4", "IPv6")
        assert "/" in flow["source"]["mask"] and "/" in flow["destination"]["mask"]
        assert flow["source"]["ip"] == rec["src_ip"] and flow["destination"]["ip"] == rec["dst_ip"]
        assert flow["bytes"] == rec["bytes"] and flow["packets"] == rec["packets"]
        assert isinstance(flow["flush_timestamp"], int) and flow["host"]


@pytest.mark.slow
def test_port_without_datagrams_gives_a_hint() -> None:
    r = decode("--port", "1", str(CAPTURE))
    assert r.returncode == 0
    assert "decoded: 0 datagrams" in r.stderr
    assert "hint: no UDP datagram" in r.stderr and "goes to port 1" in r.stderr
    assert "try --port 4739" in r.stderr
    ok = decode("--port", "4739", str(CAPTURE))
    assert "hint:" not in ok.stderr
