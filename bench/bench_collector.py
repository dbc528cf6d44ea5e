"""Collector efficiency, flowpipe next to pmacct's nfacctd (NetFlow v9) or sfacctd (sFlow v5), on the same load
(not a test).

What it does, all on loopback and bounded in time:

1. starts ``flowpipe run`` with one listener (``flow_type`` netflow9 or sflow5, ``--workers``
   sockets/processes), flush every ``--flush-interval`` s, delivering to a local HTTP sink run by
   this script;
2. starts a load driver in another process: ``--exporters`` exporters (one UDP socket and source
   id / sub-agent each), ``--per-packet`` records a datagram (default 24; sFlow fits ~7 samples in
   a 1500-byte datagram), a pool of ``--pool`` distinct flows (``--load``, below) from ``flowpipe
   generate``'s traffic model and default template, ``pool / exporters`` each, encoded once with
   :mod:`flowpipe.export` and replayed at ``--rate`` flows/s for ``--duration`` s with live header
   times and sequence numbers (v9: sysUptime, unix secs and sequence, templates every 20 data
   datagrams as the exporter sends; sFlow: the datagram sequence and uptime, the flow samples'
   own sequence numbers replay as encoded). The pool is built before the driver starts its
   clock (10-25 s for 1 M records; the collectors are idle meanwhile);
3. waits until flowpipe has decoded what arrived, reads the drops (the kernel's, from
   /proc/net/udp, and flowpipe's own: datagrams dropped, flows dropped), then stops it (it flushes
   and delivers what it holds) and takes the CPU time of all its processes from start of load to
   exit, children included (wait4, and /proc polled every 0.05 s for what wait4 misses: see TreeCPU);
4. does the same with pmacct (if installed, unless ``--no-nfacctd``): ``nfacctd`` for netflow9,
   ``sfacctd`` for sflow5, print plugin, the same aggregation key, a refresh every
   ``--flush-interval`` s as CSV on its stdout (a file in a temporary directory; the purge writers
   serialized by ``print_output_lock_file``), ``print_cache_entries`` 1.25 x the pool
   (``--nfacctd-cache``; at 1 M that makes pmacct take 10-15 GB); CPU until its last purge writer
   has exited (they write after SIGINT too). Flows decoded =
   nfacctd: the sum of its FLOWS column (flow records); sfacctd: the sum of its PACKETS column
   (FLOWS is 0 for sFlow; each flow sample is one sampled packet, as sfacctd does not renormalize
   by default), so for sFlow "flows" are flow samples throughout.

Loads (``--load``; ``--pool`` defaults to the load's):

- ``repeat`` (20,000): the traffic model's conversations replayed, so almost every record merges
  into a context the collector already holds;
- ``new`` (1,000,000): the model's records with random IPv4 source and destination addresses
  (uniform 32-bit) and a random client port (1024..65535): every record a distinct 5-tuple, most
  open a new context;
- ``rollup`` (1,000,000): the two ends drawn from 1,024 clients x 64 servers, the server side on
  its service port, the client side on a fresh random ephemeral port (32768..60999) for every
  record: new 5-tuples whose ephemeral side port rollup collapses (in a 20 s run a pair is seen
  ~45 times, spread over service ports and directions: mostly its trackers grow);
- ``busy`` (1,000,000): the same with 32 clients x 8 servers: each pair's ephemeral side crosses
  the rollup threshold within the first seconds, after which records join rolled-up contexts.

Printed per collector: flows sent, flows decoded, datagrams dropped (kernel, own), CPU seconds,
**flows per CPU-second** (flows decoded / CPU seconds), peak RSS (summed over its processes; flowpipe's
includes the flush at shutdown), and
the driver's own CPU; then the ratio flowpipe/pmacct. ``--rate`` defaults to 100,000 flows/s; the
issue's loads are measured at ``--rate 150000``:

    .venv/bin/python bench/bench_collector.py [--rate 100000] [--duration 20] [--workers 1]
    .venv/bin/python bench/bench_collector.py --load new --rate 150000 --duration 20
    .venv/bin/python bench/bench_collector.py --protocol sflow5 --load new --rate 150000
    .venv/bin/python bench/bench_collector.py --rate 200000 --workers 2 --exporters 16
    .venv/bin/python bench/bench_collector.py --rmem 33554432   # root: raise net.core.rmem_max for the run

``--json FILE`` writes the figures as JSON too (with ``load``, ``protocol`` and ``peer``; the peer's
figures under ``nfacctd`` whichever it is).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RMEM_MAX = "/proc/sys/net/core/rmem_max"
NFACCTD = "/usr/sbin/nfacctd"
V9_TIMES = struct.Struct("!III")  # sysUptime, unix secs, sequence at offset 4 of a v9 header
SFLOW_TIMES = struct.Struct("!II")  # sequence, uptime at offset 16 of an sFlow v5 header (IPv4 agent)
SFACCTD = "/usr/sbin/sfacctd"


# ---- small helpers -------------------------------------------------------------------------------

def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def proc_tree(root: int) -> dict[int, tuple[float, int]]:
    """pid -> (CPU seconds incl. reaped children, VmHWM bytes) of ``root`` and its live descendants."""
    info: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            info[int(d)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / tick)  # ppid; u+s+cu+cs
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in info and pid not in tree:
            tree[pid] = (info[pid][1], _hwm(pid))
            todo += [p for p, (pp, _) in info.items() if pp == pid]
    return tree


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def udp_drops(port: int) -> int:
    """Kernel receive-buffer drops summed over the sockets bound to UDP ``port`` (last column)."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    c = line.split()
                    if len(c) >= 13 and int(c[1].rsplit(":", 1)[1], 16) == port:
                        total += int(c[-1])
        except (OSError, ValueError):
            continue
    return total


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (OSError, ValueError):
        return 0, ""


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, rest = head.partition("{")
        if metric_name != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


class Finished:
    """A process's end: CPU seconds (its own and its reaped descendants') and exit status."""

    def __init__(self, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu = ru.ru_utime + ru.ru_stime
                self.code: int | None = proc.returncode
                return
            time.sleep(0.05)
        proc.kill()
        _, status, ru = os.wait4(proc.pid, 0)
        self.cpu = ru.ru_utime + ru.ru_stime
        self.code = None  # had to be killed


class TreeCPU:
    """User+system CPU seconds of a process and its descendants since this was made, polled from /proc
    every ``interval`` s in a thread, each process's last-seen time kept after it exits.

    ``wait4`` on the daemon misses some of it: pmacct's print plugin ignores SIGCHLD, so the writer it
    forks for every purge (seconds of CPU with a 1 M-entry cache) is reaped by the kernel and its time
    reaches nobody's rusage; and descendants still running when the daemon has exited are not in it
    either. Missed here: the last ``interval`` of each process, and processes that live less or are
    orphaned before a poll sees them.
    """

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root, self.interval = root, interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self.last: dict[tuple[int, int], float] = {}  # (pid, start time) -> CPU seconds
        self.hwm: dict[tuple[int, int], int] = {}  # (pid, start time) -> last VmHWM seen (peak RSS)
        self.alive = 0
        self.lock = threading.Lock()
        self.poll()
        self.base = dict(self.last)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _stat(self, pid: int) -> tuple[str, int, float] | None:
        """State, start time and own CPU seconds of ``pid``."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                c = f.read().rsplit(")", 1)[1].split()
            return c[0], int(c[19]), (int(c[11]) + int(c[12])) / self.tick
        except (OSError, IndexError, ValueError):
            return None

    @staticmethod
    def _children(pid: int) -> list[int]:
        out: list[int] = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
        return out

    def poll(self) -> None:
        with self.lock:
            known = {p: st for p, st in self.last}  # processes seen before: orphans are reparented
            todo = [(self.root, None)] + [(p, st) for p, st in known.items() if p != self.root]
            done: set[int] = set()
            alive = 0
            while todo:
                pid, want = todo.pop()
                if pid in done:
                    continue
                stat = self._stat(pid)
                if stat is None or (want is not None and stat[1] != want):
                    continue  # gone, or the pid was reused (then found as a child, if it is one)
                done.add(pid)
                state, st, cpu = stat
                self.last[(pid, st)] = cpu
                if state != "Z":
                    self.hwm[(pid, st)] = max(self.hwm.get((pid, st), 0), _hwm(pid))
                    alive += 1
                    todo += [(c, None) for c in self._children(pid)]
            self.alive = alive

    def peak_rss(self) -> int:
        """Peak RSS summed over the processes, as last seen (shutdown included, to the last poll)."""
        with self.lock:
            return sum(self.hwm.values())

    def total(self) -> float:
        with self.lock:
            return sum(v - self.base.get(k, 0.0) for k, v in self.last.items())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def finish(self, timeout: float = 60.0) -> float:
        """After the daemon has exited: wait (up to ``timeout``) until its descendants have too; the total."""
        end = time.monotonic() + timeout
        self.poll()
        while self.alive and time.monotonic() < end:
            time.sleep(0.1)
            self.poll()
        self._stop.set()
        self._thread.join()
        return self.total()


# ---- the HTTP sink ------------------------------------------------------------------------------

class Sink:
    """Accepts flowpipe's POSTs (gzip JSON arrays) and counts the flows in them."""

    def __init__(self) -> None:
        sink = self
        self.flows = 0
        self.requests = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                n = body.count(b'"flush_timestamp":')
                with sink.lock:
                    sink.flows += n
                    sink.requests += 1
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/intake"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the load driver (runs in its own process) ------------------------------------------------------

# default pool (distinct 5-tuples) per load
LOADS = {"repeat": 20_000, "new": 1_000_000, "rollup": 1_000_000, "busy": 1_000_000}


def build_load(exporters: int, per_packet: int, pool: int, seed: int, load: str = "repeat",
               protocol: str = "netflow9") -> list[list[tuple[bytes, int]]]:
    """Per exporter: its datagrams (v9 with templates, or sFlow v5 flow samples) and how many
    flows (records, or sampled packets) each carries.

    ``load``: *repeat* replays the traffic model's flows (few clients and servers, so the same
    conversations again and again); *new* gives every record random IPv4 addresses and a random
    client port (every 5-tuple and nearly every address pair distinct: most records open a new
    context, as on a network whose conversations are short); *rollup* draws the two ends from
    1,024 clients and 64 servers with a random ephemeral client port each time (most records open
    a new context and port rollup has ephemeral sides to collapse).
    """
    import random  # noqa: PLC0415

    from flowpipe.export import DEFAULT_TEMPLATE, Exporter, TrafficModel  # noqa: PLC0415

    now = time.time()
    out = []
    share = max(1, pool // exporters)
    rng = random.Random(seed)
    clients = [bytes((10, 1 + i // 256, i % 256, 1 + rng.randrange(254))) for i in range(1024)]
    servers = [bytes((172, 16, i, 10)) for i in range(64)]
    for k in range(exporters):
        model = TrafficModel(seed + k, pool=min(share, 65536))
        exp = Exporter("127.0.0.1:9", protocol=protocol, source_id=k, records_per_packet=per_packet,
                       boot_time=now - 3600, clock=lambda: now)
        draw = model.samples if protocol == "sflow5" else model.flows
        records = draw(share, exp.uptime_ms()).ipv4
        if load != "repeat":
            ends = (clients, servers) if load != "busy" else (clients[:32], servers[:8])
            records = [_reshape(r, load, rng, *ends) for r in records]
        if protocol == "sflow5":  # every datagram: samples counted at offset 24 (IPv4 agent)
            grams = [(g, int.from_bytes(g[24:28], "big")) for g in exp.encode(DEFAULT_TEMPLATE, records)]
        else:
            grams = [(g, (g[2] << 8 | g[3]) if _is_data(g) else 0) for g in exp.encode(DEFAULT_TEMPLATE, records)]
        out.append(grams)
    return out


def _reshape(r: tuple, load: str, rng: Any, clients: list[bytes], servers: list[bytes]) -> tuple:
    """A model record (src, dst, next hop, in/out if, packets, bytes, first, last, sport, dport, ...)
    with the addresses and the client port of ``load``."""
    rec = list(r)
    forward = rec[9] >= rec[10]  # the client (ephemeral) port is the larger one
    port = rng.randrange(1024, 65536) if load == "new" else rng.randrange(32768, 61000)
    if load == "new":
        rec[0], rec[1] = rng.getrandbits(32).to_bytes(4, "big"), rng.getrandbits(32).to_bytes(4, "big")
    else:
        client, server = rng.choice(clients), rng.choice(servers)
        rec[0], rec[1] = (client, server) if forward else (server, client)
    if rec[12] in (6, 17):
        rec[9 if forward else 10] = port
    return tuple(rec)


def _is_data(g: bytes) -> bool:
    """A v9 datagram whose first flowset is a data set (id >= 256)."""
    return len(g) > 22 and (g[20] << 8 | g[21]) >= 256


def drive(port: int, rate: float, duration: float, exporters: int, per_packet: int, pool: int, seed: int,
          kind: str = "repeat", protocol: str = "netflow9") -> dict:
    """Send the load to 127.0.0.1:``port``; what was sent, and the driver's CPU time."""
    load = build_load(exporters, per_packet, pool, seed, kind, protocol)
    sflow = protocol == "sflow5"
    socks = []
    for _ in range(exporters):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    bufs = [[(bytearray(g), n) for g, n in grams] for grams in load]
    cursor = [0] * exporters
    seq = [0] * exporters
    boot = time.time() - 3600
    dest = ("127.0.0.1", port)
    cpu0 = time.process_time()
    start = time.monotonic()
    sent = datagrams = errors = 0
    k = 0
    pack = V9_TIMES.pack_into
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= duration:
            break
        due = int(elapsed * rate) - sent
        if due < per_packet:
            time.sleep(min(0.002, (sent + per_packet) / rate - elapsed))
            continue
        wall = time.time()
        uptime, secs = int((wall - boot) * 1000) & 0xFFFFFFFF, int(wall)
        while due > 0:
            k = (k + 1) % exporters
            grams = bufs[k]
            buf, n = grams[cursor[k]]
            cursor[k] = (cursor[k] + 1) % len(grams)
            if sflow:
                SFLOW_TIMES.pack_into(buf, 16, seq[k], uptime)
            else:
                pack(buf, 4, uptime, secs, seq[k])
            seq[k] = (seq[k] + 1) & 0xFFFFFFFF
            try:
                socks[k].sendto(buf, dest)
            except OSError:
                errors += 1
                continue
            datagrams += 1
            sent += n
            due -= n
    took = time.monotonic() - start
    return {"flows": sent, "datagrams": datagrams, "send_errors": errors, "seconds": round(took, 3),
            "rate": round(sent / took), "cpu": round(time.process_time() - cpu0, 3)}


def run_driver(args: argparse.Namespace, port: int) -> dict:
    cmd = [sys.executable, __file__, "--drive", str(port), "--rate", str(args.rate), "--duration",
           str(args.duration), "--exporters", str(args.exporters), "--per-packet", str(args.per_packet),
           "--pool", str(args.pool), "--seed", str(args.seed), "--load", args.load,
           "--protocol", args.protocol]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 600)
    if out.returncode != 0:
        raise SystemExit(f"load driver failed: {out.stderr.strip()[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---- the collectors -----------------------------------------------------------------------------

def flowpipe_config(port: int, metrics_port: int, url: str, args: argparse.Namespace) -> str:
    text = "\n".join([
        'host = "bench"', "",
        "[[listeners]]", f'flow_type = "{args.protocol}"', 'bind_host = "127.0.0.1"', f"port = {port}",
        f"workers = {args.workers}", f"receive_buffer = {args.rcvbuf}", "",
        "[aggregator]", f"flush_interval = {args.flush_interval}",
        f"port_rollup_disabled = {'true' if args.no_rollup else 'false'}", "",
        "[forwarder]", f'url = "{url}"', 'format = "json"', 'compression = "gzip"', "",
        "[metrics]", f'listen = "127.0.0.1:{metrics_port}"', "",
        *(["[[sampling]]", "default = 1", ""] if args.scaled else [])])
    if args.scaled:  # (rate 1 leaves the counters as they are: the same flows, through the listener's policy)
        text = text.replace("[aggregator]\n", "[aggregator]\nscale_by_sampling = true\n")
    return text


def settle(read: Any, timeout: float = 30.0, quiet: float = 1.5) -> None:
    """Wait until ``read()`` stops changing for ``quiet`` seconds (or ``timeout``)."""
    last, since, end = read(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(0.25)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def bench_flowpipe(args: argparse.Namespace, work: str) -> dict:
    sink = Sink()
    port, mport = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    cfg = os.path.join(work, "flowpipe.toml")
    with open(cfg, "w") as f:
        f.write(flowpipe_config(port, mport, sink.url, args))
    log = open(os.path.join(work, "flowpipe.log"), "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "flowpipe.cli", "run", "--config", cfg, "--log-level", "WARNING"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    murl = f"http://127.0.0.1:{mport}"
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and proc.poll() is None and http_get(murl + "/healthz", 1)[0] != 200:
            time.sleep(0.2)
        if proc.poll() is not None or http_get(murl + "/healthz", 1)[0] != 200:
            raise SystemExit(f"flowpipe did not start; see {log.name}")
        time.sleep(0.5)
        before = sum(c for c, _ in proc_tree(proc.pid).values())
        cpu = TreeCPU(proc.pid)
        drops0 = udp_drops(port)
        sent = run_driver(args, port)

        def decoded() -> float:
            return metric(http_get(murl + "/metrics")[1], "flowpipe_flows_decoded_total")

        settle(decoded)
        text = http_get(murl + "/metrics")[1]
        tree = proc_tree(proc.pid)
        kernel = udp_drops(port) - drops0
        out = {
            "flows_sent": sent["flows"], "datagrams_sent": sent["datagrams"], "driver": sent,
            "flows_decoded": int(metric(text, "flowpipe_flows_decoded_total")),
            "datagrams_received": int(metric(text, "flowpipe_datagrams_received_total")),
            "kernel_drops": kernel,
            "own_datagram_drops": int(metric(text, "flowpipe_datagrams_dropped_total")),
            "own_flow_drops": int(metric(text, "flowpipe_flows_dropped_total")),
            "contexts": int(metric(text, "flowpipe_aggregator_contexts")),
            "rss_bytes": sum(h for _, h in tree.values()), "processes": len(tree),
            "per_worker_flows": _per_worker(text),
        }
        out["cpu_load"] = max(cpu.total(), sum(c for c, _ in tree.values()) - before)
        proc.send_signal(signal.SIGTERM)
        fin = Finished(proc, 60)
        out["cpu"] = max(fin.cpu - before, cpu.finish(), out["cpu_load"])
        # flowpipe's processes all live to the end: their peaks add up (the shutdown's flush included)
        out["rss_bytes"] = max(out["rss_bytes"], cpu.peak_rss())
        out["cpu_wait4"] = fin.cpu - before
        out["exit"] = fin.code
        time.sleep(0.2)
        out["flows_delivered"] = sink.flows
        return out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        sink.close()


def _per_worker(text: str) -> list[int]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flowpipe_flows_decoded_total{") and 'worker="' in line:
            w = line.split('worker="', 1)[1].split('"', 1)[0]
            out[w] = out.get(w, 0) + float(line.rsplit(" ", 1)[1])
    return [int(v) for _, v in sorted(out.items())]


NFACCTD_CONF = """\
daemonize: false
logfile: {work}/nfacctd.log
pidfile: {work}/nfacctd.pid
{d}_ip: 127.0.0.1
{d}_port: {port}
{d}_pipe_size: {rcvbuf}
plugins: print[agg]
aggregate[agg]: peer_src_ip, src_host, dst_host, src_port, dst_port, proto, tos, in_iface, flows
print_output[agg]: csv
print_output_lock_file[agg]: {work}/print.lock
print_refresh_time[agg]: {refresh}
print_cache_entries[agg]: {entries}
plugin_pipe_size[agg]: 104857600
plugin_buffer_size[agg]: 102400
"""


def bench_nfacctd(args: argparse.Namespace, work: str) -> dict:
    port = free_port(socket.SOCK_DGRAM)
    conf = os.path.join(work, "nfacctd.conf")
    with open(conf, "w") as f:
        daemon = "sfacctd" if args.protocol == "sflow5" else "nfacctd"
        f.write(NFACCTD_CONF.format(d=daemon, work=work, port=port, rcvbuf=args.rcvbuf,
                                    refresh=max(1, int(args.flush_interval)),
                                    entries=_prime_above(args.nfacctd_cache or int(args.pool * 1.25) + 1000)))
    binary = args.sfacctd if args.protocol == "sflow5" else args.nfacctd
    # CSV to stdout, the purges serialized by the lock file. With print_output_file ".../flows-%s.csv" the
    # name is evaluated per cache entry (%s: the second the entry was made) and opened "w": the writer
    # of the next purge truncated the files of the last one's boundary second (~15% of the flows lost
    # on the 1 M loads), and each writer rescanned its queue once per file (a third or more of its CPU).
    csv = open(os.path.join(work, "flows.csv"), "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "-f", conf], stdin=subprocess.DEVNULL, stdout=csv, stderr=subprocess.DEVNULL)
    logf = os.path.join(work, "nfacctd.log")
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and proc.poll() is None and "waiting for" not in _read(logf):
            time.sleep(0.1)
        if proc.poll() is not None:
            raise SystemExit(f"nfacctd did not start: {_read(logf)[-1000:]}")
        time.sleep(0.5)
        before = sum(c for c, _ in proc_tree(proc.pid).values())
        cpu = TreeCPU(proc.pid)
        drops0 = udp_drops(port)
        sent = run_driver(args, port)
        time.sleep(1.0)
        tree = proc_tree(proc.pid)
        cpu_load = max(cpu.total(), sum(c for c, _ in tree.values()) - before)
        kernel = udp_drops(port) - drops0
        proc.send_signal(signal.SIGINT)  # nfacctd writes what its cache holds and exits
        fin = Finished(proc, 60)
        cpu_all = max(fin.cpu - before, cpu.finish(), cpu_load)  # also waits for the last writers
        csv.close()
        flows = packets = rows = 0
        with open(os.path.join(work, "flows.csv"), errors="replace") as f:
            head: list[str] = []
            for line in f:
                c = line.rstrip("\n").split(",")
                if "FLOWS" in c and "PACKETS" in c:  # a header (written once, by the first purge)
                    head, fi, pi = c, c.index("FLOWS"), c.index("PACKETS")
                elif head and len(c) == len(head):
                    flows += int(c[fi])
                    packets += int(c[pi])
                    rows += 1
        log = _read(logf)
        if args.protocol == "sflow5":
            flows = packets  # sfacctd's FLOWS column is 0 for sFlow; each sample is one packet (not renormalized)
        return {"flows_sent": sent["flows"], "datagrams_sent": sent["datagrams"], "driver": sent,
                "flows_decoded": flows, "kernel_drops": kernel,
                "own_drops_logged": log.count("missing data") + log.count("ERROR") + log.count("Unable to write"),
                "rss_bytes": sum(h for _, h in tree.values()), "processes": len(tree),
                "cpu_load": cpu_load, "cpu": cpu_all, "cpu_wait4": fin.cpu - before, "exit": fin.code,
                "rows": rows}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        csv.close()


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _prime_above(n: int) -> int:
    def prime(k: int) -> bool:
        return k > 1 and all(k % d for d in range(2, int(k ** 0.5) + 1))
    while not prime(n):
        n += 1
    return n


# ---- report -------------------------------------------------------------------------------------

def report(name: str, r: dict) -> str:
    fps = r["flows_decoded"] / r["cpu"] if r["cpu"] > 0 else 0.0
    r["flows_per_cpu_s"] = round(fps)
    own = (f"own: {r['own_datagram_drops']} datagrams, {r['own_flow_drops']} flows"
           if "own_datagram_drops" in r else f"own: {r['own_drops_logged']} log lines")
    lines = [f"{name}:",
             f"  flows sent        {r['flows_sent']:>12,}   ({r['datagrams_sent']:,} datagrams at "
             f"{r['driver']['rate']:,} flows/s; driver CPU {r['driver']['cpu']:.2f} s)",
             f"  flows decoded     {r['flows_decoded']:>12,}",
             f"  datagrams dropped kernel {r['kernel_drops']:,}; {own}",
             f"  CPU seconds       {r['cpu']:>12.2f}   ({r['processes']} process(es), start of load to exit; "
             f"{r['cpu_load']:.2f} until the load ended)",
             f"  flows/CPU-second  {fps:>12,.0f}   (load phase only: "
             f"{r['flows_decoded'] / r['cpu_load'] if r['cpu_load'] > 0 else 0:,.0f})",
             f"  peak RSS          {r['rss_bytes'] / 2**20:>12.1f} MiB"]
    if "flows_delivered" in r:
        lines.append(f"  flows delivered   {r['flows_delivered']:>12,}   (aggregated, to the HTTP sink; "
                     f"{r['contexts']:,} contexts)")
    if r.get("per_worker_flows"):
        lines.append(f"  per worker        {r['per_worker_flows']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100_000,
                    help="flows per second sent (the issue's loads are measured at 150000) [100000]")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load per collector [20]")
    ap.add_argument("--workers", type=int, default=1, help="flowpipe listener workers (processes) [1]")
    ap.add_argument("--exporters", type=int, default=8, help="exporters (UDP sockets) in the driver [8]")
    ap.add_argument("--per-packet", type=int, default=24, help="flow records per datagram [24]")
    ap.add_argument("--load", choices=sorted(LOADS), default="repeat",
                    help="repeat: the same conversations again; new: random addresses and client ports; rollup: "
                         "1,024 clients x 64 servers, fresh ephemeral client ports; busy: the same with 32 x 8 "
                         "[repeat]")
    ap.add_argument("--pool", type=int, help="distinct 5-tuples, replayed [repeat 20,000; others 1,000,000]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flush-interval", type=float, default=10.0, help="flowpipe flush_interval and nfacctd "
                    "print_refresh_time [10]")
    ap.add_argument("--no-rollup", action="store_true", help="flowpipe with port rollup off (nfacctd has none)")
    ap.add_argument("--scaled", action="store_true", help="flowpipe with a [[sampling]] rule (default rate 1, "
                    "every exporter) and scale_by_sampling: every record's counters are multiplied by its rate "
                    "(this once sent every record through flow tuples, as --per-flow)")
    ap.add_argument("--rcvbuf", type=int, default=32 << 20, help="SO_RCVBUF both collectors ask for [32 MiB]")
    ap.add_argument("--rmem", type=int, help="as root: raise net.core.rmem_max to this for the run (restored after)")
    ap.add_argument("--nfacctd", default=shutil.which("nfacctd") or NFACCTD)
    ap.add_argument("--protocol", choices=("netflow9", "sflow5"), default="netflow9",
                    help="netflow9 (peer: nfacctd) or sflow5 (peer: sfacctd, same flags) [netflow9]")
    ap.add_argument("--sfacctd", default=shutil.which("sfacctd") or SFACCTD)
    ap.add_argument("--no-nfacctd", action="store_true")
    ap.add_argument("--nfacctd-cache", type=int, help="nfacctd print_cache_entries (a prime at least this) "
                    "[1.25 x the pool]")
    ap.add_argument("--no-flowpipe", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--drive", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pool is None:
        args.pool = LOADS[args.load]
    if args.drive is not None:
        print(json.dumps(drive(args.drive, args.rate, args.duration, args.exporters, args.per_packet, args.pool,
                               args.seed, args.load, args.protocol)))
        return
    rmem = read_int(RMEM_MAX)
    restore = None
    if args.rmem and rmem is not None and args.rmem > rmem:
        if os.geteuid() == 0:
            with open(RMEM_MAX, "w") as f:
                f.write(str(args.rmem))
            restore, rmem = rmem, args.rmem
            print(f"net.core.rmem_max raised from {restore} to {rmem} for this run (restored at the end)")
        else:
            print(f"net.core.rmem_max is {rmem}; not root, so it stays (asked for {args.rmem})")
    cpus = os.cpu_count()
    per = (f"up to {args.per_packet} samples/datagram (MTU-bound)" if args.protocol == "sflow5"
           else f"{args.per_packet} flows/datagram")
    print(f"load: {args.load}, {args.protocol}, {per}, {args.pool:,} distinct flows, "
          f"{args.exporters} exporters, "
          f"{args.rate:,.0f} flows/s for {args.duration:g} s; flowpipe workers={args.workers}, "
          f"rollup {'off' if args.no_rollup else 'on'}{'; scale_by_sampling' if args.scaled else ''}; {cpus} CPUs; "
          f"net.core.rmem_max={rmem} "
          f"(both ask SO_RCVBUF {args.rcvbuf})")
    peer = "sfacctd" if args.protocol == "sflow5" else "nfacctd"
    results: dict[str, Any] = {"args": vars(args), "load": args.load, "protocol": args.protocol, "peer": peer,
                               "rmem_max": rmem, "cpus": cpus}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-collector-") as work:
            if not args.no_flowpipe:
                results["flowpipe"] = bench_flowpipe(args, work)
                print(report(f"flowpipe (workers={args.workers})", results["flowpipe"]), flush=True)
            if not args.no_nfacctd:  # results["nfacctd"] holds sfacctd's figures for sflow5
                binary = args.sfacctd if peer == "sfacctd" else args.nfacctd
                if os.path.exists(binary):
                    results["nfacctd"] = bench_nfacctd(args, work)
                    print(report(f"{peer} (pmacct, print plugin)", results["nfacctd"]), flush=True)
                else:
                    print(f"{peer}: not installed ({binary}); no comparison")
    finally:
        if restore is not None:
            with open(RMEM_MAX, "w") as f:
                f.write(str(restore))
    fp, nf = results.get("flowpipe"), results.get("nfacctd")
    if fp and nf and nf["flows_per_cpu_s"]:
        ratio = fp["flows_per_cpu_s"] / nf["flows_per_cpu_s"]
        results["ratio"] = round(ratio, 3)
        print(f"ratio flowpipe/{peer} (flows per CPU-second): {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
