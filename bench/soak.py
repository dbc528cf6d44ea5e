"""Load and soak: flood a real ``flowpipe run`` with valid exports from 1,000 exporters and garbage.

Loopback only, bounded in time. flowpipe runs as a subprocess with a config on free ports and a
real HTTP backend (a counting one, here, in this process); a sender process binds one UDP socket
per exporter on its own address in 127.1.0.0/16 (NetFlow v5, v9, IPFIX and sFlow v5 in turn, made
with flowpipe.export, sequence numbers advancing) plus garbage sources in 127.2.0.0/16 (random
bytes, valid headers with junk, structure-aware mutations of valid datagrams), at ``--rate``
datagrams/s for ``--minutes``. Every second /metrics is scraped (latency printed), RSS read.

After the flood it waits for the pipeline to go quiet (every context flushed) and checks:

- the process stayed up, answered every scrape within ``--scrape-max`` seconds, RSS <= ``--rss-cap-mb``;
- datagrams: received = decoded + invalid + held + dropped, and offered = received + kernel drops;
- flows: decoded = taken by the accumulator; flushed = delivered (forwarder_flows_sent) + pending +
  dropped{stage="forwarder"}, nothing pending, and the backend accepted exactly what was delivered;
- SIGTERM: exit 0 within 30 s, everything still held delivered.

Prints a summary table; exits 1 when an invariant fails (2 when the run could not start).

    .venv/bin/python bench/soak.py [--minutes 3] [--exporters 1000] [--rate 20000] [--garbage 0.2]
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import random
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROTOCOLS = ("netflow5", "netflow9", "ipfix", "sflow5")
FLUSH_INTERVAL = 5.0


# ---- the backend: counts what it accepts, keeps nothing --------------------------------------------

class CountingBackend:
    """HTTP/1.1 intake on 127.0.0.1: gzip/JSON bodies decoded, flows counted, 200 answered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flows = 0
        self.bytes = 0
        self.requests = 0
        self.errors = 0
        be = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 200
                try:
                    if "gzip" in (self.headers.get("Content-Encoding") or ""):
                        body = gzip.decompress(body)
                    flows = json.loads(body)
                    n, b = len(flows), sum(int(f.get("bytes", 0)) for f in flows)
                except (ValueError, TypeError, OSError, AttributeError):
                    n, b, status = 0, 0, 400
                with be.lock:
                    be.requests += 1
                    if status == 200:
                        be.flows += n
                        be.bytes += b
                    else:
                        be.errors += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/flows"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def counts(self) -> tuple[int, int, int, int]:
        with self.lock:
            return self.flows, self.bytes, self.requests, self.errors

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the sender process ---------------------------------------------------------------------------

def exporter_address(i: int) -> str:
    return f"127.1.{i // 250}.{i % 250 + 1}"


def _build_exporter(i: int, records: int) -> tuple[str, list[bytes], list[tuple[bytes, int, int]]]:
    """(protocol, template datagrams, [(data datagram, sequence offset, sequence step)]) of exporter i."""
    from flowpipe.export import DEFAULT_TEMPLATE, IpfixEncoder, Netflow9Encoder, SflowEncoder, TrafficModel, encode_v5

    proto = PROTOCOLS[i % 4]
    model = TrafficModel(seed=i, pool=40)
    uptime, now = 3_600_000, int(time.time())
    data: list[tuple[bytes, int, int]] = []
    templates: list[bytes] = []
    for _ in range(4):
        if proto == "netflow5":
            recs = model.flows(records, uptime).ipv4
            data.append((encode_v5(recs, uptime, now, 0, engine_id=i & 0xFF), 16, len(recs)))
        elif proto == "netflow9":
            enc9 = Netflow9Encoder(source_id=i)
            templates = [enc9.template_packet([DEFAULT_TEMPLATE], uptime, now)]
            recs = model.flows(records, uptime).ipv4
            data.append((enc9.data_packet(DEFAULT_TEMPLATE, recs, uptime, now), 12, 1))
        elif proto == "ipfix":
            encx = IpfixEncoder(observation_domain_id=i)
            templates = [encx.template_message([DEFAULT_TEMPLATE], now)]
            recs = model.flows(records, uptime).ipv4
            data.append((encx.data_message(DEFAULT_TEMPLATE, recs, now), 8, len(recs)))
        else:
            encs = SflowEncoder(exporter_address(i), sub_agent_id=0, sampling_rate=100)
            recs = model.samples(max(1, records // 2), uptime).ipv4
            data.append((encs.datagram(encs.flow_samples(DEFAULT_TEMPLATE, recs), uptime), 16, 1))
    return proto, templates, data


def _garbage(rng: random.Random, valid: list[bytes]) -> list[bytes]:
    from fuzz import structure

    out = []
    heads = (b"\x00\x05", b"\x00\x09", b"\x00\x0a", b"\x00\x00\x00\x05", b"")
    for k in range(4096):
        kind = k % 4
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(0, 1500)))
        elif kind == 1:
            out.append(rng.choice(heads) + rng.randbytes(rng.randrange(0, 600)))
        else:
            d = structure.mutate(rng.choice(valid), rng, rng.randrange(1, 5))
            out.append(structure.fix_lengths(d) if kind == 3 else d)
    return [g for g in out if g]  # (an empty datagram is not received as one)


def sender(ports: dict[str, int], exporters: int, rate: float, garbage_share: float, seconds: float,
           records: int, result: Any) -> None:
    """Child process: build every exporter's datagrams, announce templates, flood, report counts."""
    rng = random.Random(1)
    socks, plans = [], []
    for i in range(exporters):
        proto, templates, data = _build_exporter(i, records)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((exporter_address(i), 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        socks.append(s)
        plans.append((proto, templates, data))
    valid = [d for _, _, data in plans for d, _, _ in data] + [t for _, tpls, _ in plans for t in tpls]
    junk = _garbage(rng, valid)
    gsocks = []
    for k in range(50):
        g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        g.bind((f"127.2.0.{k + 1}", 0))
        gsocks.append(g)
    targets = [("127.0.0.1", ports[p]) for p in PROTOCOLS]
    counts = {"valid": 0, "garbage": 0, "templates": 0, "errors": 0, "valid_flows": 0}
    seqs = [0] * exporters

    def send(s: socket.socket, data: bytes, to: tuple[str, int], kind: str) -> None:
        try:
            s.sendto(data, to)
            counts[kind] += 1
        except OSError:
            counts["errors"] += 1

    for i, (proto, templates, _) in enumerate(plans):
        for t in templates:
            send(socks[i], t, targets[PROTOCOLS.index(proto)], "templates")
    time.sleep(0.5)  # templates decoded before the data that needs them
    flows_in = {d: _flow_count(d) for _, _, data in plans for d, _, _ in data}
    start = time.monotonic()
    end = start + seconds
    tick, i, gi = 0.01, 0, 0
    refresh_at = start + 30
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate) - (counts["valid"] + counts["garbage"])
        for _ in range(max(0, min(due, int(rate * 0.05) + 1))):
            if rng.random() < garbage_share:
                send(gsocks[gi % 50], junk[gi % len(junk)], targets[gi % 4], "garbage")
                gi += 1
                continue
            proto, _, data = plans[i]
            raw, off, step = data[seqs[i] % len(data)]
            buf = bytearray(raw)
            struct.pack_into("!I", buf, off, (seqs[i] * step) & 0xFFFFFFFF)
            seqs[i] += 1
            send(socks[i], bytes(buf), targets[PROTOCOLS.index(proto)], "valid")
            counts["valid_flows"] += flows_in[raw]
            i = (i + 1) % exporters
        if now >= refresh_at:  # templates again, as exporters do
            refresh_at += 30
            for k, (proto, templates, _) in enumerate(plans):
                for t in templates:
                    send(socks[k], t, targets[PROTOCOLS.index(proto)], "templates")
        slack = now + tick - time.monotonic()
        if slack > 0:
            time.sleep(slack)
    counts["seconds"] = time.monotonic() - start  # type: ignore[assignment]
    result.put(counts)


def _flow_count(d: bytes) -> int:
    """Flow records in a valid datagram made by _build_exporter."""
    v = struct.unpack_from("!H", d)[0]
    if v == 5:
        return int(struct.unpack_from("!H", d, 2)[0])
    if v in (9, 10):
        n = len(d) - (20 if v == 9 else 16) - 4
        return n // 45  # DEFAULT_TEMPLATE records are 45 bytes
    return int(struct.unpack_from("!I", d, 24)[0])  # sFlow samples (IPv4 agent)


# ---- metrics --------------------------------------------------------------------------------------

def scrape(url: str, timeout: float) -> tuple[float, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """(seconds taken, {(sample name, sorted labels): value}) of one /metrics scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read().decode()
    took = time.perf_counter() - t
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return took, out


def total(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in m.items() if n == name and all((k, x) in lab for k, x in labels.items()))


def by_label(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, lab), v in m.items():
        if n == name:
            key = dict(lab).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# ---- the run ----------------------------------------------------------------------------------------

def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flowpipe_command() -> list[str]:
    exe = Path(sys.executable).with_name("flowpipe")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("flowpipe")
    return [found] if found else [sys.executable, "-m", "flowpipe.cli"]


def write_config(path: Path, ports: dict[str, int], metrics_port: int, url: str) -> None:
    lines = []
    for proto in PROTOCOLS:
        lines += ["[[listeners]]", f'flow_type = "{proto}"', 'bind_host = "127.0.0.1"', f"port = {ports[proto]}", ""]
    lines += ["[aggregator]", f"flush_interval = {FLUSH_INTERVAL}", "flush_tick = 1.0", "",
              "[forwarder]", f'url = "{url}"', "retry_initial = 0.2", "retry_max = 2.0", "",
              "[metrics]", f'listen = "127.0.0.1:{metrics_port}"', ""]
    path.write_text("\n".join(lines))


class Check:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, str]] = []

    def __call__(self, name: str, ok: bool, detail: str) -> None:
        self.rows.append((name, ok, detail))

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=3.0, help="flood duration (default 3)")
    ap.add_argument("--exporters", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=20000.0, help="datagrams/s offered, garbage included")
    ap.add_argument("--garbage", type=float, default=0.2, help="share of garbage datagrams (default 0.2)")
    ap.add_argument("--records", type=int, default=10, help="flow records per valid datagram")
    ap.add_argument("--rss-cap-mb", type=float, default=1024.0)
    ap.add_argument("--scrape-max", type=float, default=2.0, help="seconds a /metrics scrape may take")
    ap.add_argument("--quiet", action="store_true", help="do not print every scrape")
    args = ap.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.exporters + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.exporters + 1024), hard))
    seconds = args.minutes * 60
    backend = CountingBackend()
    ports = {p: free_port(socket.SOCK_DGRAM) for p in PROTOCOLS}
    mport = free_port(socket.SOCK_STREAM)
    tmp = Path(tempfile.mkdtemp(prefix="flowpipe-soak."))
    cfg = tmp / "soak.toml"
    write_config(cfg, ports, mport, backend.url)
    log = open(tmp / "flowpipe.log", "w")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen([*flowpipe_command(), "run", "--config", str(cfg), "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=log)
    murl = f"http://127.0.0.1:{mport}/metrics"
    check = Check()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                scrape(murl, 1.0)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    print(f"flowpipe did not start (exit {proc.poll()}); log: {tmp / 'flowpipe.log'}")
                    return 2
                time.sleep(0.2)
        print(f"flowpipe pid {proc.pid} up; ports {ports}; metrics :{mport}; backend {backend.url}")
        print(f"flood: {args.exporters} exporters + 50 garbage sources, {args.rate:.0f} datagrams/s "
              f"({args.garbage:.0%} garbage) for {seconds:.0f} s")
        ctx = mp.get_context("spawn")
        result: Any = ctx.Queue()
        child = ctx.Process(target=sender, args=(ports, args.exporters, args.rate, args.garbage, seconds,
                                                 args.records, result), daemon=True)
        child.start()
        latencies: list[float] = []
        rss: list[float] = []
        failed_scrapes = 0
        died_at: float | None = None
        t0 = time.monotonic()
        last: dict[Any, float] = {}
        print(f"{'t':>6} {'scrape ms':>9} {'rss MB':>7} {'received':>10} {'decoded':>10} {'invalid':>9} "
              f"{'dropped':>9} {'flows sent':>11}")
        while child.is_alive() or time.monotonic() - t0 < 2:
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0) % 1.0))
            if proc.poll() is not None:
                died_at = time.monotonic() - t0
                break
            rss.append(rss_mb(proc.pid))
            try:
                took, last = scrape(murl, args.scrape_max * 5)
                latencies.append(took)
            except OSError as e:
                failed_scrapes += 1
                print(f"scrape failed: {e}")
                continue
            if not args.quiet:
                print(f"{time.monotonic() - t0:6.1f} {took * 1000:9.1f} {rss[-1]:7.0f} "
                      f"{total(last, 'flowpipe_datagrams_received_total'):10.0f} "
                      f"{total(last, 'flowpipe_datagrams_decoded_total'):10.0f} "
                      f"{total(last, 'flowpipe_datagrams_invalid_total'):9.0f} "
                      f"{total(last, 'flowpipe_datagrams_dropped_total'):9.0f} "
                      f"{total(last, 'flowpipe_forwarder_flows_sent_total'):11.0f}")
        child.join(30)
        sent = result.get(timeout=30) if not result.empty() or child.exitcode == 0 else {}
        check("process up during the flood", died_at is None, "yes" if died_at is None else
              f"exited {proc.returncode} at {died_at:.0f} s")
        if died_at is not None:
            return report(check, args, sent, {}, latencies, rss, backend, tmp)

        # quiet: everything received decoded, every context flushed, nothing pending
        stable, prev = 0, None
        wait_end = time.monotonic() + 4 * FLUSH_INTERVAL + 30
        while time.monotonic() < wait_end:
            time.sleep(1.0)
            rss.append(rss_mb(proc.pid))
            took, last = scrape(murl, args.scrape_max * 5)
            latencies.append(took)
            key = (total(last, "flowpipe_datagrams_received_total"), total(last, "flowpipe_flows_flushed_total"),
                   total(last, "flowpipe_forwarder_flows_sent_total"), backend.counts()[0])
            busy = total(last, "flowpipe_forwarder_flows_pending") > 0
            stable = stable + 1 if key == prev and not busy else 0
            prev = key
            if stable >= FLUSH_INTERVAL + 2:
                break
        m = last
        received = total(m, "flowpipe_datagrams_received_total")
        decoded = total(m, "flowpipe_datagrams_decoded_total")
        invalid = total(m, "flowpipe_datagrams_invalid_total")
        held = total(m, "flowpipe_datagrams_held")
        dropped = total(m, "flowpipe_datagrams_dropped_total")
        kernel = total(m, "flowpipe_socket_drops_total")
        offered = sent.get("valid", 0) + sent.get("garbage", 0) + sent.get("templates", 0)
        check("datagrams: received = decoded + invalid + held + dropped",
              received == decoded + invalid + held + dropped,
              f"{received:.0f} = {decoded:.0f} + {invalid:.0f} + {held:.0f} + {dropped:.0f}")
        check("datagrams: offered = received + kernel drops", offered == received + kernel,
              f"{offered} = {received:.0f} + {kernel:.0f}")
        fdec = total(m, "flowpipe_flows_decoded_total")
        fagg = total(m, "flowpipe_aggregator_flows_received_total")
        flushed = total(m, "flowpipe_flows_flushed_total")
        fsent = total(m, "flowpipe_forwarder_flows_sent_total")
        pending = total(m, "flowpipe_forwarder_flows_pending")
        fdrop = total(m, "flowpipe_flows_dropped_total", stage="forwarder")
        check("flows: decoded = taken by the accumulator", fdec == fagg, f"{fdec:.0f} = {fagg:.0f}")
        check("flows: flushed = delivered + pending + dropped", flushed == fsent + pending + fdrop,
              f"{flushed:.0f} = {fsent:.0f} + {pending:.0f} + {fdrop:.0f}")
        check("flows: nothing pending once quiet", pending == 0, f"{pending:.0f}")
        be_flows = backend.counts()[0]
        check("flows: backend accepted = delivered", be_flows == fsent, f"{be_flows} = {fsent:.0f}")

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        time.sleep(0.2)
        after = backend.counts()[0]
        check("SIGTERM: exit 0 within 30 s", rc == 0, f"exit {rc}")
        check("SIGTERM: nothing left to deliver", after == be_flows, f"{after - be_flows} more flows at stop")
        return report(check, args, sent, m, latencies, rss, backend, tmp, failed_scrapes)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        backend.close()


def report(check: Check, args: argparse.Namespace, sent: dict[str, Any], m: dict[Any, float],
           latencies: list[float], rss: list[float], backend: CountingBackend, tmp: Path,
           failed_scrapes: int = 0) -> int:
    secs = float(sent.get("seconds") or args.minutes * 60)
    check("RSS under the cap", bool(rss) and max(rss) <= args.rss_cap_mb,
          f"max {max(rss or [0]):.0f} MB, cap {args.rss_cap_mb:.0f} MB")
    slow = [x for x in latencies if x > args.scrape_max]
    check("/metrics responsive", not failed_scrapes and not slow and bool(latencies),
          f"{len(latencies)} scrapes, {failed_scrapes} failed, {len(slow)} over {args.scrape_max} s")
    rows = [("duration of the flood", f"{secs:.0f} s")]
    if sent:
        rows += [("offered datagrams/s (valid + garbage)",
                  f"{(sent['valid'] + sent['garbage']) / secs:,.0f} ({sent['valid'] / secs:,.0f} + "
                  f"{sent['garbage'] / secs:,.0f}); templates {sent['templates']}, send errors {sent['errors']}"),
                 ("offered valid flows/s", f"{sent['valid_flows'] / secs:,.0f}")]
    if m:
        rec = total(m, "flowpipe_datagrams_received_total")
        kernel = total(m, "flowpipe_socket_drops_total")
        rows += [("received datagrams/s", f"{rec / secs:,.0f} (kernel drops {kernel:,.0f})"),
                 ("decoded datagrams/s", f"{total(m, 'flowpipe_datagrams_decoded_total') / secs:,.0f}"),
                 ("invalid datagrams", ", ".join(f"{k} {v:,.0f}" for k, v in sorted(
                     by_label(m, "flowpipe_datagrams_invalid_total", "reason").items())) or "0"),
                 ("dropped datagrams", ", ".join(f"{k} {v:,.0f}" for k, v in sorted(
                     by_label(m, "flowpipe_datagrams_dropped_total", "reason").items())) or "0"),
                 ("flows decoded/s", f"{total(m, 'flowpipe_flows_decoded_total') / secs:,.0f}"),
                 ("flows flushed / delivered", f"{total(m, 'flowpipe_flows_flushed_total'):,.0f} / "
                  f"{total(m, 'flowpipe_forwarder_flows_sent_total'):,.0f}"),
                 ("flows lost per sequence numbers (garbage too)",
                  f"{total(m, 'flowpipe_flows_lost_estimate_total'):,.0f}")]
    be = backend.counts()
    rows += [("backend", f"{be[0]:,} flows in {be[2]:,} requests, {be[3]} refused"),
             ("RSS max", f"{max(rss or [0]):.0f} MB"),
             ("scrape latency", f"p50 {statistics.median(latencies) * 1000:.0f} ms, max "
              f"{max(latencies) * 1000:.0f} ms" if latencies else "no scrape")]
    width = max(len(k) for k, _ in rows)
    print("\n== soak summary ==")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("\n== invariants ==")
    for name, ok, detail in check.rows:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(f"\nflowpipe log: {tmp / 'flowpipe.log'}")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
