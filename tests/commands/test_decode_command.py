"""``flowpipe decode FILE.pcap``: JSON flows on stdout, a summary per datagram status on stderr."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from flowpipe.cli import main
from tests.support import captures


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes(int(x) for x in src.split(".")), bytes(int(x) for x in dst.split(".")))
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def write_pcap(path: Path, frames: list[bytes]) -> None:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(f), len(f)) + f
    path.write_bytes(out)


def v9(*sets: bytes) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), 5000, 1_700_000_000, 1, 0) + b"".join(sets)


def fset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


TEMPLATE = fset(0, struct.pack("!HH", 256, 5) + struct.pack("!HHHHHHHHHH", 8, 4, 12, 4, 1, 4, 58, 2, 56, 6))
RECORD = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!IH", 1500, 42) + bytes.fromhex("001122334455")


@pytest.fixture
def pcap(tmp_path: Path) -> Path:
    p = tmp_path / "x.pcap"
    write_pcap(p, [
        udp_frame("192.0.2.1", "192.0.2.9", 5000, 2055, v9(TEMPLATE, fset(256, RECORD * 2))),
        udp_frame("192.0.2.1", "192.0.2.9", 5000, 2055, b"\x00\x09garbage"),
        udp_frame("192.0.2.2", "192.0.2.9", 5000, 2055, v9(fset(256, RECORD))),  # no template, ever
        udp_frame("192.0.2.3", "192.0.2.9", 53, 9999, b"\x12\x34\x01\x00" + bytes(8)),  # not a flow export
    ])
    return p


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    rc = main(["decode", *args])
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines()], err


def test_flows_as_json_and_a_summary(pcap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, flows, err = run(capsys, str(pcap))
    assert rc == 0 and len(flows) == 2
    f = flows[0]
    assert (f["datagram"], f["type"], f["exporter"], f["src_ip"], f["dst_ip"], f["bytes"], f["src_mac"]) == (
        1, "netflow9", "192.0.2.1", "10.0.0.1", "10.0.0.2", 1500, "00:11:22:33:44:55")
    assert f["next_hop"] == "" and f["extras"] is None
    assert "decoded: 1 datagrams, 2 flows" in err
    assert "held: 1 datagrams waited for a template; 0 released later, 1 never completed" in err
    assert "invalid: 1 datagrams (short 1)" in err
    assert "not a flow export: 1 datagrams" in err


def test_port_filter_and_verbose(pcap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, flows, err = run(capsys, str(pcap), "--port", "9999", "-v")
    assert rc == 0 and flows == []
    assert "datagram 4 from 192.0.2.3:53: not a flow export" in err
    rc, flows, err = run(capsys, str(pcap), "--port", "2055", "-v")
    assert "datagram 3 from 192.0.2.2:5000: netflow9 held (waiting for a template), 0 flows" in err


def test_mapping_config(pcap: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[listeners]]\nflow_type = "netflow9"\nport = 2055\nnamespace = "lab"\n'
                   '  [[listeners.mapping]]\n  field = 58\n  destination = "vlan"\n')
    rc, flows, _ = run(capsys, str(pcap), "--port", "2055", "--mapping-config", str(cfg))
    assert rc == 0 and flows[0]["extras"] == {"vlan": "002a"} and flows[0]["namespace"] == "lab"


def test_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not.pcap").write_bytes(b"hello world, not a capture at all")
    assert main(["decode", str(tmp_path / "not.pcap")]) == 2
    assert main(["decode", str(tmp_path / "missing.pcap")]) == 2
    (tmp_path / "bad.toml").write_text("[decoder]\nnope = 1\n")
    assert main(["decode", str(tmp_path / "not.pcap"), "--mapping-config", str(tmp_path / "bad.toml")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["nf9_akvorado_data_before_template", "ipfix_yaf", "nf5_akvorado",
                                  "sflow5_akvorado_multi_sample"])
def test_real_captures(name: str, capsys: pytest.CaptureFixture[str], shared_captures: Path) -> None:
    path = shared_captures / f"{name}.pcap"
    exp = captures.expected(name)
    rc, flows, err = run(capsys, str(path), "--port", str(exp["udp_dst_port"]))
    assert rc == 0 and len(flows) == exp["totals"]["records"]
    assert sum(f["bytes"] for f in flows) == exp["totals"]["bytes"]
    assert f"decoded: {exp['datagrams']} datagrams" in err


def test_listener_options_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--mapping-config brings the listener's passthrough_unknown and namespace to the decode command."""
    names = captures.names("ipfix_netscaler")
    if not names:
        captures.require()
    cap = captures.CAPTURES / f"{names[0]}.pcap"
    cfg = tmp_path / "f.toml"
    cfg.write_text('[[listeners]]\nflow_type = "ipfix"\nnamespace = "lab"\npassthrough_unknown = true\n')
    assert main(["decode", str(cap), "--mapping-config", str(cfg)]) == 0
    flows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert flows and all(f["namespace"] == "lab" for f in flows)
    assert any(k.startswith("5951.") for f in flows for k in (f["extras"] or {}))  # NetScaler enterprise IEs
