"""``flowpipe generate`` run for real against a UDP socket on 127.0.0.1: what it says it sent arrived."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.exportparse import parse_ipfix, parse_sflow, parse_v5, parse_v9

CMD = [sys.executable, "-m", "flowpipe.cli", "generate"]


class Receiver:
    """Collects every datagram sent to it until stopped."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65535))
            except TimeoutError:
                continue

    def drain(self, expected: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.datagrams) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # anything more than expected would show up now
        return self.datagrams

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def generate(*args: str, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    p = subprocess.run(CMD + list(args), capture_output=True, text=True, timeout=timeout)
    lines = p.stdout.strip().splitlines()
    return p.returncode, (json.loads(lines[-1]) if lines else {}), p.stderr


def tally(protocol: str, datagrams: list[bytes]) -> dict[str, int]:
    """Flows, packets, bytes and sequence gaps (in datagrams) read back from the wire."""
    t = {"flows": 0, "packets": 0, "bytes": 0, "gaps": 0, "counter_samples": 0}
    templates: dict = {}
    expected_seq = None
    for d in datagrams:
        if protocol == "netflow5":
            p = parse_v5(d)
            recs = [(r[5], r[6]) for r in p["records"]]
            seq, units = p["sequence"], p["count"]
        elif protocol == "netflow9":
            p = parse_v9(d, templates)
            recs = [(r[5], r[6]) for r in p["records"]]
            seq, units = p["sequence"], 1
        elif protocol == "ipfix":
            p = parse_ipfix(d, templates)
            recs = [(r[5], r[6]) for r in p["records"]]
            seq, units = p["sequence"], p["data_records"]
        else:
            p = parse_sflow(d)
            recs = []
            for s in p["samples"]:
                if s["kind"] == "flow":
                    recs.append((1, int.from_bytes(s["records"][1][4:8], "big")))
                else:
                    t["counter_samples"] += 1
            seq, units = p["sequence"], 1
        if expected_seq is not None and seq != expected_seq:
            # a skipped datagram: v5/IPFIX count records, so the gap is one datagram's worth
            t["gaps"] += 1
        expected_seq = seq + units
        t["flows"] += len(recs)
        t["packets"] += sum(r[0] for r in recs)
        t["bytes"] += sum(r[1] for r in recs)
    return t


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["netflow5", "netflow9", "ipfix", "sflow5"])
def test_generate_sends_what_it_reports(protocol: str) -> None:
    with receiver() as rx:
        code, summary, err = generate("--target", f"127.0.0.1:{rx.port}", "--protocol", protocol,
                                      "--flows", "3000", "--seed", "5", "--drop-every", "7", "--source-id", "3")
        assert code == 0, err
        got = rx.drain(summary["datagrams"])
    assert len(got) == summary["datagrams"]
    t = tally(protocol, got)
    assert summary["flows"] + summary["flows_skipped"] == 3000
    assert (t["flows"], t["packets"], t["bytes"]) == (summary["flows"], summary["packets"], summary["bytes"])
    assert t["gaps"] == summary["datagrams_skipped"] > 0
    assert summary["protocol"] == protocol and summary["source_id"] == 3 and summary["seed"] == 5
    if protocol == "sflow5":
        assert t["counter_samples"] == summary["counter_samples"] > 0
    else:
        assert summary["packets"] > summary["flows"]  # flows of many packets


@pytest.mark.slow
def test_same_seed_same_traffic() -> None:
    runs = []
    for _ in range(2):
        with receiver() as rx:
            code, summary, _ = generate("--target", f"127.0.0.1:{rx.port}", "--protocol", "netflow9",
                                        "--flows", "500", "--seed", "42")
            assert code == 0
            templates: dict = {}
            recs = [r[:7] + r[9:] for d in rx.drain(summary["datagrams"]) for r in parse_v9(d, templates)["records"]]
            runs.append(recs)
    assert runs[0] == runs[1] and len(runs[0]) == 500


@pytest.mark.slow
def test_rate_and_duration() -> None:
    with receiver() as rx:
        start = time.monotonic()
        code, summary, _ = generate("--target", f"127.0.0.1:{rx.port}", "--protocol", "ipfix", "--rate", "3000",
                                    "--duration", "1.5")
        took = time.monotonic() - start
        assert code == 0
    assert 1.4 <= summary["duration_s"] <= 2.0 and took < 10
    assert 3000 * 1.5 * 0.85 <= summary["flows"] <= 3000 * 1.5 * 1.05


def test_config_file_gives_target_protocol_and_source_id(tmp_path: Path) -> None:
    with receiver() as rx:
        conf = tmp_path / "exporter.conf"
        conf.write_text(f"[doca_netflow_conf]\ntarget = 127.0.0.1:{rx.port}\nsource_id = 9\nversion = 10\n")
        code, summary, _ = generate("--config", str(conf), "--flows", "100")
        assert code == 0
        got = rx.drain(summary["datagrams"])
    assert summary["protocol"] == "ipfix" and summary["source_id"] == 9 and summary["flows"] == 100
    assert {parse_ipfix(d, {})["domain"] for d in got[:1]} == {9}


@pytest.mark.slow
def test_sigterm_stops_and_still_reports() -> None:
    with receiver() as rx:
        p = subprocess.Popen(CMD + ["--target", f"127.0.0.1:{rx.port}", "--rate", "2000", "--duration", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not rx.datagrams and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert len(rx.drain(summary["datagrams"])) == summary["datagrams"]
    assert summary["duration_s"] < 30 and summary["flows"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    ([], "give --target"),
    (["--target", "no-such-host.invalid:2055"], "cannot resolve target"),
    (["--target", "127.0.0.1:0"], "port '0'"),
])
def test_errors_exit_2_with_a_message(args: list[str], message: str) -> None:
    code, summary, err = generate(*args)
    assert code == 2 and message in err and summary == {}


def test_bad_protocol_is_a_usage_error() -> None:
    code, _, err = generate("--target", "127.0.0.1:9", "--protocol", "netflow7")
    assert code == 2 and "invalid choice" in err
