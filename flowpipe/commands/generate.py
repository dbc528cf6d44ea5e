"""``flowpipe generate``: send synthetic flow exports to a collector, then print what was sent (one JSON line)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from flowpipe.commands import add
from flowpipe.export import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATE_V6,
    PROTOCOLS,
    Batch,
    Exporter,
    ExportError,
    InterfaceCounters,
    TrafficModel,
)

DEFAULT_FLOWS = 1000
COUNTER_INTERVAL = 10.0  # seconds between sFlow counter samples (one more at the end)


DESCRIPTION = ("Send realistic synthetic flows to HOST:PORT and print, at the end, one JSON "
               "line with what was sent. Without --flows or --duration it sends "
               f"{DEFAULT_FLOWS} flows.")


def register(sub: argparse._SubParsersAction) -> None:
    p = add(sub, "generate", main, "send synthetic NetFlow/IPFIX/sFlow exports to a collector", DESCRIPTION)
    p.add_argument("--target", help="collector HOST:PORT (hostname, IPv4 or [IPv6]); or 'target' in --config")
    p.add_argument("--protocol", choices=PROTOCOLS, help="[the config's version, else netflow9]")
    p.add_argument("--flows", type=_positive_int, help="stop after this many flows (--drop-every's included)")
    p.add_argument("--rate", type=float, default=0.0, help="flows per second [as fast as possible]")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--drop-every", type=_positive_int, default=0, metavar="N",
                   help="build every Nth data datagram but do not send it (exercises loss tracking)")
    p.add_argument("--seed", type=int, help="traffic model seed [random; printed in the summary]")
    p.add_argument("--source-id", type=int, help="source id / observation domain / sFlow sub-agent [0]")
    p.add_argument("--config", help="exporter conf file (INI; [doca_netflow_conf] files work as is)")
    p.add_argument("--sampling-rate", type=_positive_int, help="sFlow sampling rate / v5 sampling interval [1]")
    p.add_argument("--pool", type=int, default=65536,
                   help="distinct flows drawn before they are replayed with new times; 0 = all fresh [65536]")
    p.add_argument("--ipv6-share", type=_share, default=0.1, help="fraction of IPv6 flows (not netflow5) [0.1]")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


class _Stop:
    """Set by SIGINT/SIGTERM: the loop ends and the summary is still printed."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def main(args: argparse.Namespace) -> int:
    if args.target is None and args.config is None:
        print("flowpipe generate: error: give --target HOST:PORT (or a --config with a target)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    try:
        exporter = Exporter(args.target, protocol=args.protocol, source_id=args.source_id, config=args.config,
                            sampling_rate=args.sampling_rate, drop_every=args.drop_every,
                            boot_time=time.time() - 3600)
    except ExportError as e:
        print(f"flowpipe generate: error: {e}", file=sys.stderr)
        return 2
    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with exporter:
            elapsed = _run(exporter, args, seed, stop)
    except ExportError as e:
        print(f"flowpipe generate: error: {e}", file=sys.stderr)
        return 1
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    summary: dict[str, Any] = {"protocol": exporter.protocol, "target": f"{exporter.host}:{exporter.port}",
                               "source_id": exporter.config.source_id, "seed": seed}
    summary.update(exporter.stats.as_dict())
    summary["duration_s"] = round(elapsed, 3)
    generated = exporter.stats.flows + exporter.stats.flows_skipped
    summary["flows_per_s"] = round(generated / elapsed) if elapsed > 0 else 0
    print(json.dumps(summary), flush=True)
    return 0


def _run(exporter: Exporter, args: argparse.Namespace, seed: int, stop: _Stop) -> float:
    sflow = exporter.protocol == "sflow5"
    model = TrafficModel(seed, ipv6_share=0.0 if exporter.protocol == "netflow5" else args.ipv6_share,
                         pool=max(0, args.pool))
    limit = args.flows if args.flows is not None else (None if args.duration is not None else DEFAULT_FLOWS)
    per = exporter.config.records_per_packet
    chunk = per * 8
    counters: dict[int, InterfaceCounters] = {}
    start = last_send = last_counters = time.monotonic()
    sent = 0
    while not stop.requested:
        now = time.monotonic()
        elapsed = now - start
        if (limit is not None and sent >= limit) or (args.duration is not None and elapsed >= args.duration):
            break
        n = chunk if limit is None else min(chunk, limit - sent)
        if args.rate > 0:
            due = int(elapsed * args.rate) - sent
            if due < min(per, n) and now - last_send < 0.1:
                time.sleep(min(0.01, max(0.0, (sent + min(per, n)) / args.rate - elapsed)))
                continue
            if due < 1:
                time.sleep(0.001)
                continue
            n = min(n, due)
        uptime = exporter.uptime_ms()
        batch = model.samples(n, uptime) if sflow else model.flows(n, uptime)
        exporter.send(DEFAULT_TEMPLATE, batch.ipv4)
        exporter.send(DEFAULT_TEMPLATE_V6, batch.ipv6)
        sent += n
        last_send = now
        if sflow:
            _count(counters, batch, exporter.config.sampling_rate)
            if now - last_counters >= COUNTER_INTERVAL:
                exporter.send_counters(list(counters.values()))
                last_counters = now
    elapsed = time.monotonic() - start
    if sflow and counters:
        exporter.send_counters(list(counters.values()))
    return elapsed


def _count(counters: dict[int, InterfaceCounters], batch: Batch, rate: int) -> None:
    """Grow the interfaces' counters by what the samples stand for (each sample = ``rate`` packets)."""
    for rows in batch:
        for r in rows:
            cin = counters.get(r[3]) or counters.setdefault(r[3], InterfaceCounters(r[3]))
            cout = counters.get(r[4]) or counters.setdefault(r[4], InterfaceCounters(r[4]))
            cin.in_octets += r[6] * rate
            cin.in_ucast_pkts += rate
            cout.out_octets += r[6] * rate
            cout.out_ucast_pkts += rate
