"""Access to the real vendor captures in ../shared/captures (read in place, never copied).

Tests that use them skip with a clear reason when the folder is absent.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

from flowpipe.pcap import UdpDatagram, udp_datagrams

CAPTURES = Path(os.environ.get("FLOWPIPE_CAPTURES", Path(__file__).resolve().parents[3] / "shared" / "captures"))
# Exports made here by real exporters (softflowd, pmacct) with tshark-derived expected values,
# in the same format; committed with the script that made them (tests/fixtures/make_fixtures.sh).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def names(prefix: str = "") -> list[str]:
    """Capture names (without .pcap) that have an expected.json, for parametrize; [] when absent."""
    if not CAPTURES.is_dir():
        return []
    return sorted(p.name[: -len(".expected.json")] for p in CAPTURES.glob(f"{prefix}*.expected.json"))


def cases(found: list[str]) -> list:
    """``found`` for parametrize, or one case skipped with the reason when there are none (pytest
    would report an empty parameter set with no useful reason)."""
    if found:
        return found
    why = (f"real captures not available: {CAPTURES} does not exist (it is ../shared/captures; set "
           "FLOWPIPE_CAPTURES to another folder)" if not CAPTURES.is_dir()
           else f"no matching NAME.pcap + NAME.expected.json in {CAPTURES}")
    return [pytest.param("", marks=pytest.mark.skip(reason=why))]


def own_names(prefix: str = "") -> list[str]:
    """Names of the project's own real-exporter fixtures (tests/fixtures), for parametrize."""
    return sorted(p.name[: -len(".expected.json")] for p in FIXTURES.glob(f"{prefix}*.expected.json"))


def _dir(name: str) -> Path:
    return FIXTURES if (FIXTURES / f"{name}.expected.json").exists() else require()


def require() -> Path:
    """The captures folder, or skip the test saying it is absent. (An async test that needs the folder
    asks for the ``shared_captures`` fixture, tests/conftest.py, instead: a skip raised inside trio
    reaches pytest without its reason.)"""
    if not CAPTURES.is_dir():
        pytest.skip(f"real captures not available: {CAPTURES} does not exist (it is ../shared/captures)")
    return CAPTURES


def expected(name: str) -> dict:
    with open(_dir(name) / f"{name}.expected.json") as f:
        return json.load(f)


def datagrams(name: str) -> list[UdpDatagram]:
    """The export datagrams of a capture: UDP to the port its expected.json names."""
    exp = expected(name)
    port = exp.get("udp_dst_port")
    grams = udp_datagrams(str(_dir(name) / f"{name}.pcap"))
    return [g for g in grams if port is None or g.dport == port]


def expected_sums(name: str) -> dict[tuple, list[int]]:
    """(src, dst, proto, sport, dport) -> [bytes, packets] summed over the expected records."""
    import ipaddress

    out: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in expected(name).get("records", []):
        key = (ipaddress.ip_address(r["src_addr"]).compressed if r.get("src_addr") else "",
               ipaddress.ip_address(r["dst_addr"]).compressed if r.get("dst_addr") else "",
               int(r.get("ip_protocol") or 0), int(r.get("src_port") or 0), int(r.get("dst_port") or 0))
        out[key][0] += int(r.get("bytes") or 0)
        out[key][1] += int(r.get("packets") or 0)
    return dict(out)
