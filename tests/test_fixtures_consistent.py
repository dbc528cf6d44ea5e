"""The project's own real-exporter fixtures (tests/fixtures) are consistent with their captures.

Each ``<name>.expected.json`` was derived by tshark from ``<name>.pcap`` in the same run of
``tests/fixtures/make_fixtures.sh``.  These tests catch a capture regenerated (or edited) without
its expected values, and expected values edited by hand:

* without tshark: the capture's sha256 is the one recorded when the values were derived, the
  number of export datagrams and the exporters match, ``totals`` are the sums of ``records``,
  every record has the keys the decoder tests read, and the traffic generator still writes
  exactly ``inputs/traffic.pcap``;
* with tshark: the expected values are derived again from the capture and must be the same
  (every field when the tshark version is the one that made them, else the keys tests read).
"""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from flowpipe.pcap import udp_datagrams
from tests.support import captures

FIXTURES = captures.FIXTURES
# the fixtures make_fixtures.sh makes; a missing one is an error, not a skip
MADE = ["ipfix_pmacct_nfprobe", "ipfix_softflowd", "nf5_softflowd", "nf9_pmacct_nfprobe", "nf9_softflowd",
        "sflow5_pmacct_sfprobe"]
NAMES = captures.own_names()

TOP_KEYS = ["capture", "capture_sha256", "flow_type", "udp_dst_port", "datagrams", "exporters", "totals", "records",
            "datagram_headers", "tshark_version", "input_check"]
RECORD_KEYS = ["frame", "exporter", "version", "src_addr", "dst_addr", "src_port", "dst_port", "ip_protocol", "bytes",
               "packets", "input_interface", "output_interface", "tcp_flags"]
SFLOW_KEYS = ["sampling_rate", "agent", "sample_pool", "frame_length"]
# what the decoder tests compare: kept equal whatever tshark version re-derives
STABLE_TOP = ["flow_type", "udp_dst_port", "datagrams", "exporters", "undecodable_datagrams", "undecodable_flowsets",
              "malformed_datagrams", "non_export_packets", "totals"]
STABLE_RECORD = RECORD_KEYS + ["template_id", "direction", "sampling_rate", "agent", "sample_pool", "frame_length"]
DETAIL = ["records", "templates", "options_records", "counter_samples", "other_samples", "datagram_headers",
          "input_check"]


def _derive_module() -> ModuleType:
    path = FIXTURES / "derive_expected.py"
    spec = importlib.util.spec_from_file_location("fixtures_derive_expected", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_fixture_is_there() -> None:
    assert NAMES == MADE
    for name in MADE:
        assert (FIXTURES / f"{name}.pcap").is_file(), name
    assert (FIXTURES / "inputs" / "traffic.pcap").is_file()


def test_traffic_generator_reproduces_input(tmp_path: Path) -> None:
    """gen_traffic.py (seeded, standard library) still writes the committed input byte for byte."""
    script = (FIXTURES / "make_fixtures.sh").read_text()
    seed = next(line.split("=")[1].split()[0] for line in script.splitlines() if line.startswith("SEED="))
    npkt = next(line.split("=")[1].split()[0] for line in script.splitlines() if line.startswith("NPKT="))
    out = tmp_path / "traffic.pcap"
    subprocess.run([sys.executable, str(FIXTURES / "gen_traffic.py"), str(out), "--packets", npkt, "--seed", seed],
                   check=True, capture_output=True, timeout=120)
    assert out.read_bytes() == (FIXTURES / "inputs" / "traffic.pcap").read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_expected_belongs_to_capture(name: str) -> None:
    exp = captures.expected(name)
    for k in TOP_KEYS:
        assert k in exp, k
    assert exp["capture"] == f"{name}.pcap"
    digest = hashlib.sha256((FIXTURES / f"{name}.pcap").read_bytes()).hexdigest()
    assert digest == exp["capture_sha256"], (
        f"{name}.pcap is not the capture {name}.expected.json was derived from: "
        "regenerate both with tests/fixtures/make_fixtures.sh")
    grams = [g for g in udp_datagrams(str(FIXTURES / f"{name}.pcap")) if g.dport == exp["udp_dst_port"]]
    assert len(grams) == exp["datagrams"]
    assert sorted({g.src for g in grams}) == exp["exporters"]
    assert exp["undecodable_flowsets"] == 0 and exp["malformed_datagrams"] == 0 and exp["non_export_packets"] == 0


@pytest.mark.parametrize("name", NAMES)
def test_totals_are_sums_of_records(name: str) -> None:
    exp = captures.expected(name)
    recs, t = exp["records"], exp["totals"]
    assert recs, "no records"
    assert t["records"] == len(recs)
    assert t["bytes"] == sum(r["bytes"] or 0 for r in recs)
    assert t["packets"] == sum(r["packets"] or 0 for r in recs)
    assert t["records_without_bytes"] == sum(1 for r in recs if r["bytes"] is None)
    if "options_records" in exp:
        assert t["options_records"] == len(exp["options_records"])
    if "counter_samples" in exp:
        assert t["counter_samples"] == len(exp["counter_samples"])
    if exp["flow_type"] == "sflow5":  # a datagram header counts every sample, flow or not
        want = len(recs) + len(exp["counter_samples"]) + len(exp["other_samples"])
        assert sum(h["samples"] for h in exp["datagram_headers"]) == want
    else:
        assert sum(h["data_records"] for h in exp["datagram_headers"]) == len(recs)
    keys = RECORD_KEYS + (SFLOW_KEYS if exp["flow_type"] == "sflow5" else [])
    for i, r in enumerate(recs):
        missing = [k for k in keys if k not in r]
        assert not missing, f"record {i}: missing {missing}"
        assert r["exporter"] in exp["exporters"]


@pytest.mark.parametrize("name", NAMES)
def test_export_accounts_for_the_input(name: str) -> None:
    """make_fixtures.sh checked every export against inputs/traffic.pcap; the result is recorded."""
    chk = captures.expected(name)["input_check"]
    assert chk["ok"] is True
    t = captures.expected(name)["totals"]
    if "flow_mismatches" in chk:
        assert chk["flow_mismatches"] == []
        assert (chk["exported_packets"], chk["exported_bytes"]) == (t["packets"], t["bytes"])
        assert chk["exported_packets"] == chk["input_packets_exportable"]
    else:
        assert chk["sample_mismatches"] == [] and chk["samples"] == t["records"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_rederived_with_tshark(name: str) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed: expected values not re-derived (the sha256, datagram count and "
                    "totals checks still ran)")
    de = _derive_module()
    exp = captures.expected(name)
    fams = set(exp["input_check"].get("exportable_families") or [4, 6])
    try:
        got = de.derive(FIXTURES / f"{name}.pcap", exp["flow_type"], exp["udp_dst_port"], exp.get("source", ""),
                        exp.get("tshark_notes", ""), FIXTURES / "inputs" / "traffic.pcap", fams)
    except RuntimeError as e:
        if "no-duplicate-keys" in str(e):
            pytest.skip(f"this tshark cannot run the oracle command: {e}")
        raise
    for k in STABLE_TOP:
        assert got.get(k) == exp.get(k), k
    assert len(got["records"]) == len(exp["records"])
    for i, (have, want) in enumerate(zip(got["records"], exp["records"], strict=True)):
        for k in STABLE_RECORD:
            assert have.get(k) == want.get(k), f"record {i} ({k})"
    assert got["input_check"]["ok"] is True
    if got["tshark_version"] == exp["tshark_version"]:
        for k in DETAIL:
            assert got.get(k) == exp.get(k), k
        assert de.dumps(got) == (FIXTURES / f"{name}.expected.json").read_text()
