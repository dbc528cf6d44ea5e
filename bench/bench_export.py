"""Benchmark: flow export throughput on one core (not a test).

For each protocol it times, over the same realistic flows (the traffic model's, default template):

- ``encode``: ``Exporter.encode`` only (records -> datagrams, sequence/templates kept);
- ``send``: encode plus ``sendto`` of every datagram to a local UDP socket that nobody reads;
- ``first pass``: what ``flowpipe generate`` does while it draws its pool of 65536 distinct flows
  fresh from the traffic model: draw, encode, send;
- ``generate``: the same once the pool replays (the steady state of a long run).

Rates are flows per second of CPU time used by this process (one core; steady on a busy
machine). The headline is NetFlow v9 ``encode`` with the default template (target: 500k flows/s).

    python bench/bench_export.py [--seconds 3] [--batch 300] [--protocols netflow9,ipfix,netflow5,sflow5]
"""
from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable

from flowpipe.export import DEFAULT_TEMPLATE, Exporter, TrafficModel

POOL = 65536  # distinct flows, as flowpipe generate's default --pool


def _rate(step: Callable[[], int], seconds: float) -> float:
    """Flows per CPU second of repeated ``step()`` calls (each returns the flows it handled)."""
    step()  # warm up: templates announced, structs compiled
    done, start = 0, time.process_time()  # CPU time of this process: fair on a busy machine
    while (elapsed := time.process_time() - start) < seconds:
        done += step()
    return done / elapsed


def bench(protocol: str, seconds: float, batch: int, sink: tuple[str, int]) -> dict[str, float]:
    flows_of = TrafficModel(1, pool=POOL)
    uptime = 3_600_000
    sampled = protocol == "sflow5"
    records = (flows_of.samples if sampled else flows_of.flows)(batch, uptime).ipv4
    exporter = Exporter(f"{sink[0]}:{sink[1]}", protocol=protocol)

    def encode() -> int:
        exporter.encode(DEFAULT_TEMPLATE, records)
        return len(records)

    def send() -> int:
        return exporter.send(DEFAULT_TEMPLATE, records)

    def generate() -> int:
        b = (flows_of.samples if sampled else flows_of.flows)(batch, exporter.uptime_ms())
        return exporter.send(DEFAULT_TEMPLATE, b.ipv4)

    out = {"encode": _rate(encode, seconds), "send": _rate(send, seconds)}
    draw = flows_of.samples if sampled else flows_of.flows
    start = time.process_time()
    for _ in range(0, POOL, batch):  # the first pass draws every pool flow fresh
        exporter.send(DEFAULT_TEMPLATE, draw(batch, exporter.uptime_ms()).ipv4)
    out["first pass"] = POOL / (time.process_time() - start)
    out["generate"] = _rate(generate, seconds)
    exporter.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--batch", type=int, default=300, help="records per send() call")
    ap.add_argument("--protocols", default="netflow9,ipfix,netflow5,sflow5")
    args = ap.parse_args()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        results = {p: bench(p, args.seconds, args.batch, sink.getsockname()) for p in args.protocols.split(",")}
    columns = ["encode", "send", "first pass", "generate"]
    print(f"{'protocol':<10}" + "".join(f"{c:>13}" for c in columns) + f"   (flows/s, one core, batch {args.batch})")
    for p, r in results.items():
        print(f"{p:<10}" + "".join(f"{r[c]:>13,.0f}" for c in columns))
    if "netflow9" in results:
        v9 = results["netflow9"]["encode"]
        print(f"netflow9 default template encode: {v9:,.0f} flows/s ({'meets' if v9 >= 500_000 else 'BELOW'} 500k)")


if __name__ == "__main__":
    main()
