"""Decode + aggregate throughput without sockets, and the memory of flow contexts (not a test).

Throughput: NetFlow v9 datagrams of ``--per-packet`` records (default 24; ``flowpipe generate``'s
traffic model and default IPv4 template, a pool of ``--pool`` distinct flows replayed), fed in
batches of ``--batch`` datagrams through the service's own code: ``DecoderStage.decode_batch``
then ``AccumulatorStage.take``, with a flush every ``--flush-every`` flows, as the service does.
Prints flows per CPU-second of each step and of both, with port rollup on and off.

Memory: ``--contexts N`` distinct flows (every one a new context) aggregated at once; prints the
bytes per context (tracemalloc: the context table, the held flows; the rollup tracker apart) and
the peak RSS of a fresh process holding them.

    .venv/bin/python bench/bench_aggregate.py [--seconds 3] [--profile] [--contexts 1000000]

``--profile`` prints the cProfile of the decode+aggregate loop (rollup on) instead.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from flowpipe.aggregate.stage import AccumulatorStage
from flowpipe.config import AggregatorConfig, DecoderConfig
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.export import DEFAULT_TEMPLATE, Exporter
from flowpipe.export.traffic import TrafficModel
from flowpipe.flow import make_flow
from flowpipe.metrics import Metrics

EXPORTER = "127.0.0.1"
T0 = 1_700_000_000.0


def datagrams(n_flows: int, per_packet: int, pool: int, seed: int = 1) -> list[bytes]:
    """What ``flowpipe generate`` would send for ``n_flows`` flows (template datagrams included)."""
    model = TrafficModel(seed, pool=pool)
    exp = Exporter("127.0.0.1:9", protocol="netflow9", records_per_packet=per_packet, boot_time=T0 - 3600,
                   clock=lambda: T0)
    out: list[bytes] = []
    step = per_packet * 64
    for i in range(0, n_flows, step):
        batch = model.flows(min(step, n_flows - i), exp.uptime_ms())
        out += exp.encode(DEFAULT_TEMPLATE, batch.ipv4)
    return out


class Pipeline:
    """One listener's decoder stage and the accumulator stage, driven by hand."""

    def __init__(self, rollup: bool) -> None:
        self.metrics = Metrics()
        self.queue = FlowQueue(10**9)
        self.decoder = DecoderStage("netflow9", "default", DatagramDecoder("netflow9", DecoderConfig(), []),
                                    self.metrics, self.queue)
        cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup)
        self.acc = AccumulatorStage(cfg, self.metrics, self.queue, 40000)


def throughput(grams: list[bytes], rollup: bool, seconds: float, batch: int, flush_every: int) -> dict[str, float]:
    p = Pipeline(rollup)
    batches = [[(g, EXPORTER, 50000, T0) for g in grams[i:i + batch]] for i in range(0, len(grams), batch)]
    t_dec = t_agg = 0.0
    flows = since_flush = 0
    now = T0
    clock = time.process_time
    start = clock()
    while clock() - start < seconds:
        for b in batches:
            t = clock()
            fb = p.decoder.decode_batch(b)
            t2 = clock()
            p.queue.pending += len(fb.flows)
            p.acc.take(fb, now)
            since_flush += len(fb.flows)
            if since_flush >= flush_every:
                now += 10.0
                p.acc.tick(now)
                since_flush = 0
            t3 = clock()
            t_dec += t2 - t
            t_agg += t3 - t2
            flows += len(fb.flows)
    return {"flows": flows, "decode": flows / t_dec, "aggregate": flows / t_agg, "both": flows / (t_dec + t_agg),
            "contexts": len(p.acc.acc.contexts)}


def profile(grams: list[bytes], seconds: float, batch: int) -> None:
    p = Pipeline(True)
    batches = [[(g, EXPORTER, 50000, T0) for g in grams[i:i + batch]] for i in range(0, len(grams), batch)]
    prof = cProfile.Profile()
    start = time.process_time()
    prof.enable()
    while time.process_time() - start < seconds:
        for b in batches:
            fb = p.decoder.decode_batch(b)
            p.queue.pending += len(fb.flows)
            p.acc.take(fb, T0)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def distinct_flows(lo: int, hi: int) -> list[tuple]:
    """Flows number ``lo`` to ``hi``, every one with its own key, shaped like decoded IPv4 flows."""
    out = []
    for i in range(lo, hi):
        out.append(make_flow(type="netflow9", exporter=EXPORTER, namespace="default", start=1_700_000_000,
                             end=1_700_000_001, bytes=1000 + i, packets=3, ip_protocol=6,
                             src_ip=bytes((10, (i >> 16) & 255, (i >> 8) & 255, i & 255)),
                             dst_ip=bytes((192, 0, 2, i % 200)), src_port=1024 + i % 60000, dst_port=443,
                             in_if=1, out_if=2, tcp_flags=0x1B, next_hop=bytes((10, 0, 0, 1)),
                             src_mask=24, dst_mask=24, ether_type=0x0800))
    return out


def memory_child(n: int, rollup: bool) -> dict[str, Any]:
    """Runs in a fresh process: aggregate ``n`` distinct flows, measure what the contexts take."""
    from flowpipe.aggregate.accumulator import Accumulator  # noqa: PLC0415

    gc.collect()
    base_rss = _rss()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    acc = Accumulator(AggregatorConfig(max_contexts=max(n, 1), port_rollup_disabled=not rollup,
                                       max_rollup_entries=4 * n + 10))
    for i in range(0, n, 8192):  # decoded batches come and go; what stays is what the contexts hold
        acc.add(distinct_flows(i, min(n, i + 8192)), T0)
    gc.collect()
    total = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    tracker = _deep_size_rollup(acc) if acc.rollup is not None else 0
    return {"contexts": len(acc.contexts), "bytes_total": total, "bytes_per_context": total / max(n, 1),
            "rollup_bytes": tracker,
            "rollup_entries": (len(acc.rollup.cur) + len(acc.rollup.new)) if acc.rollup else 0,
            "rss_growth_mib": (_rss() - base_rss) / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _deep_size_rollup(acc: Any) -> int:
    """Bytes of the rollup tracker (its own estimate when it has one)."""
    r = acc.rollup
    size = getattr(r, "memory_bytes", None)
    if callable(size):
        return int(size())
    seen: set[int] = set()
    total = 0
    for store in (r.cur, r.new):
        total += sys.getsizeof(store)
        for k, v in store.items():
            for o in (k, v):
                if id(o) not in seen:
                    seen.add(id(o))
                    total += sys.getsizeof(o)
    return total


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(n: int, rollup: bool) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(n)] + (["--rollup"] if rollup else []),
                         capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per measurement [3]")
    ap.add_argument("--per-packet", type=int, default=24, help="records per datagram [24]")
    ap.add_argument("--pool", type=int, default=65536, help="distinct flows in the load [65536]")
    ap.add_argument("--flows", type=int, default=200_000, help="flows in the prepared load [200000]")
    ap.add_argument("--batch", type=int, default=64, help="datagrams per batch [64]")
    ap.add_argument("--flush-every", type=int, default=500_000, help="flows between two flush ticks [500000]")
    ap.add_argument("--contexts", type=int, default=1_000_000, help="contexts for the memory figures; 0 = skip")
    ap.add_argument("--profile", action="store_true", help="cProfile of decode+aggregate (rollup on)")
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--rollup", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_child is not None:
        print(json.dumps(memory_child(a.memory_child, a.rollup)))
        return
    grams = datagrams(a.flows, a.per_packet, a.pool)
    if a.profile:
        profile(grams, a.seconds, a.batch)
        return
    print(f"load: {a.flows} NetFlow v9 flows, {a.per_packet} per datagram, {a.pool} distinct, "
          f"batches of {a.batch} datagrams")
    for rollup in (True, False):
        r = throughput(grams, rollup, a.seconds, a.batch, a.flush_every)
        print(f"rollup {'on ' if rollup else 'off'}: decode {r['decode']:>10,.0f}  aggregate {r['aggregate']:>10,.0f}"
              f"  decode+aggregate {r['both']:>10,.0f} flows/CPU-s  ({r['contexts']:,} contexts)")
    if a.contexts:
        for rollup in (False, True):
            m = memory(a.contexts, rollup)
            print(f"{m['contexts']:,} contexts, rollup {'on ' if rollup else 'off'}: "
                  f"{m['bytes_per_context']:.0f} bytes/context (held flow included)"
                  + (f", rollup tracker {m['rollup_entries']:,} entries {m['rollup_bytes'] / 2**20:.0f} MiB"
                     if rollup else "")
                  + f"; RSS +{m['rss_growth_mib']:.0f} MiB, peak RSS {m['peak_rss_mib']:.0f} MiB "
                    "(tracemalloc on: slower, RSS a bit higher)")


if __name__ == "__main__":
    main()
