"""Decode + aggregate throughput without sockets, and the memory of flow contexts (not a test).

Throughput: NetFlow v9 datagrams of ``--per-packet`` records (default 24; ``flowpipe generate``'s
traffic model and default IPv4 template), fed in batches of ``--batch`` datagrams through the
service's own code: ``DecoderStage.decode_batch`` then ``AccumulatorStage.take``, with a flush tick
every ``--flush-every`` flows. Two loads: *repeated flows* (a pool of ``--pool`` distinct flows
replayed, as ``bench_collector.py`` sends; measured after one uncounted pass) and *new flows*
(every connection new, one pass: contexts made, port rollup at work, as on a busy real network).
Prints flows per CPU-second of decoding, of aggregating and of both, rollup on and off.

Memory: ``--contexts N`` distinct flows (each its own context) aggregated in a fresh process that
imported the service first; prints the RSS per context, the bytes of Python objects per context
(tracemalloc, separate run) and the peak RSS, with port rollup off and on.

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

from flowpipe import runtime
from flowpipe.aggregate.stage import AccumulatorStage
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.export import DEFAULT_TEMPLATE, Exporter, TrafficModel
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
        decoder = DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True)  # as the service's
        self.decoder = DecoderStage(ListenerConfig(flow_type="netflow9"), self.metrics,
                                    decoder=decoder, queue=self.queue)
        cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup)
        self.acc = AccumulatorStage(cfg, self.metrics, queue=self.queue, max_sequence_keys=40000)


def throughput(grams: list[bytes], rollup: bool, seconds: float, batch: int, flush_every: int,
               warm: bool = True) -> dict[str, float]:
    """Flows per CPU-second of decoding and of aggregating ``grams`` in batches of ``batch``.

    ``warm``: the load is replayed until ``seconds`` of CPU have gone, after one pass that is not
    counted (contexts made, rollup settled): the steady state of repeated flows. Otherwise one
    counted pass through the load: every context new.
    """
    p = Pipeline(rollup)
    batches = [[(g, EXPORTER, 50000, T0) for g in grams[i:i + batch]] for i in range(0, len(grams), batch)]
    t_dec = t_agg = 0.0
    flows = since_flush = 0
    now = T0
    clock = time.process_time
    if warm:
        for b in batches:
            p.acc.take(p.decoder.decode_batch(b), now)
    start = clock()
    while clock() - start < seconds or not flows:
        for b in batches:
            t = clock()
            fb = p.decoder.decode_batch(b)
            t2 = clock()
            p.queue.pending += fb.size
            p.acc.take(fb, now)
            since_flush += fb.size
            if since_flush >= flush_every:
                now += 10.0
                p.acc.tick(now)
                since_flush = 0
            t3 = clock()
            t_dec += t2 - t
            t_agg += t3 - t2
            flows += fb.size
        if not warm:
            break
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
            p.queue.pending += fb.size
            p.acc.take(fb, T0)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def distinct_flows(lo: int, hi: int) -> list[tuple]:
    """Flows number ``lo`` to ``hi``, every one its own context, made like decoded ones: fresh int and
    bytes objects per flow, 20,000 clients talking to 50 servers on ephemeral source ports."""
    out = []
    for i in range(lo, hi):
        c, s = i % 20000, (i // 20000) % 50
        out.append(("netflow9", EXPORTER, "default", 0, 0, 1_700_000_000 + i % 600, 1_700_000_600 + i % 300,
                    1000 + i, 3 + i % 1000, 0x0800, 6, bytes((10, 1, c >> 8, c & 255)), bytes((10, 2, 0, s)),
                    32768 + (i * 7919) % 28000, 443 + s % 2, 0, 0, 24, 24, 1 + s % 4, 10, 0x1B, bytes((10, 0, 0, 1)),
                    0, None))
    return out


def memory_child(n: int, rollup: bool, trace: bool) -> dict[str, Any]:
    """Runs in a fresh process: aggregate ``n`` distinct flows, measure what the contexts take.

    ``trace``: bytes of Python objects allocated and kept (tracemalloc); else the growth of the
    resident set and the peak RSS of the process, which imports the whole service first, like a
    running flowpipe. Rollup runs with its default cap (``max_rollup_entries``, 2 M trackers).
    """
    import flowpipe.service  # noqa: F401, PLC0415 - the baseline of a running flowpipe
    from flowpipe.aggregate.accumulator import Accumulator  # noqa: PLC0415
    from flowpipe.decode.rows import rows  # noqa: PLC0415
    runtime.tune_allocator()  # as the running service does

    acc = Accumulator(AggregatorConfig(max_contexts=max(n, 1), port_rollup_disabled=not rollup))
    gc.collect()
    base_rss = _rss()
    if trace:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if trace else 0
    for i in range(0, n, 8192):  # decoded batches come and go; what stays is what the contexts hold
        acc.add(rows(distinct_flows(i, min(n, i + 8192))), T0)
    gc.collect()
    out: dict[str, Any] = {"contexts": len(acc.contexts),
                           "rollup_entries": (acc.rollup.entries(0) + acc.rollup.entries(1)) if acc.rollup else 0}
    if trace:
        out["bytes_per_context"] = (tracemalloc.get_traced_memory()[0] - before) / max(n, 1)
        tracemalloc.stop()
    else:
        out["rss_per_context"] = (_rss() - base_rss) / max(n, 1)
        out["base_rss_mib"] = base_rss / 2**20
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(n: int, rollup: bool, trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", str(n)] + (["--rollup"] if rollup else []) + (
        ["--trace"] if trace else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
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
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_child is not None:
        print(json.dumps(memory_child(a.memory_child, a.rollup, a.trace)))
        return
    with runtime.fewer_collections():  # the young-collection threshold the service runs with
        run(a)


def run(a: argparse.Namespace) -> None:
    grams = datagrams(a.flows, a.per_packet, a.pool)
    if a.profile:
        profile(grams, a.seconds, a.batch)
        return
    print(f"load: {a.flows:,} NetFlow v9 flows, {a.per_packet} per datagram, batches of {a.batch} datagrams; "
          f"repeated flows: {a.pool:,} distinct, replayed; new flows: every connection new (pool 0)")
    fresh = datagrams(a.flows, a.per_packet, 0, seed=2)
    for rollup in (True, False):
        for what, load, warm in (("repeated flows", grams, True), ("new flows     ", fresh, False)):
            r = throughput(load, rollup, a.seconds, a.batch, a.flush_every, warm)
            print(f"rollup {'on ' if rollup else 'off'}, {what}: decode {r['decode']:>9,.0f}  "
                  f"aggregate {r['aggregate']:>9,.0f}  both {r['both']:>9,.0f} flows/CPU-s "
                  f"({r['contexts']:,} contexts)")
    if a.contexts:
        for rollup in (False, True):
            m, t = memory(a.contexts, rollup, False), memory(a.contexts, rollup, True)
            print(f"{m['contexts']:,} contexts, rollup {'on ' if rollup else 'off'}: "
                  f"{m['rss_per_context']:.0f} bytes/context of RSS ({t['bytes_per_context']:.0f} in Python objects)"
                  + (f", rollup trackers {m['rollup_entries']:,}" if rollup else "")
                  + f"; peak RSS {m['peak_rss_mib']:.0f} MiB (service imported: {m['base_rss_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
