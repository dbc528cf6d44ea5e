"""Benchmark: sFlow v5 decoding throughput on one core (not a test).

Synthesizes realistic datagrams (default: 7 flow samples per datagram, each with a 128-byte raw
Ethernet header of IPv4/IPv6 TCP/UDP traffic, some VLAN-tagged, plus an extended switch record,
and one counter sample every 10 datagrams), decodes them repeatedly and prints flow samples per
second and peak RSS.

    python bench/bench_decode_sflow.py [--datagrams 2000] [--seconds 5] [--samples 7]
"""
from __future__ import annotations

import argparse
import random
import resource
import struct
import time

from flowpipe.decode.base import Source
from flowpipe.decode.sflow import decode


def _frame(rng: random.Random) -> bytes:
    """A 128-byte prefix of a plausible Ethernet frame."""
    tcp = rng.random() < 0.7
    v6 = rng.random() < 0.3
    sport, dport = rng.randrange(1024, 65535), rng.choice([443, 80, 53, 22, 8080])
    if tcp:
        l4 = struct.pack(">HHIIBBHHH", sport, dport, rng.getrandbits(32), 0, 0x50, 0x18, 512, 0, 0)
    else:
        l4 = struct.pack(">HHHH", sport, dport, 1000, 0)
    proto = 6 if tcp else 17
    if v6:
        l3 = struct.pack(">IHBB", 6 << 28, 1200, proto, 64) + rng.randbytes(32)
        et = 0x86DD
    else:
        l3 = struct.pack(">BBHHHBBH", 0x45, 0, 1200, 1, 0, 64, proto, 0) + rng.randbytes(8)
        et = 0x0800
    l2 = rng.randbytes(12)
    if rng.random() < 0.3:
        l2 += struct.pack(">HH", 0x8100, rng.randrange(1, 4095))
    frame = l2 + struct.pack(">H", et) + l3 + l4
    return (frame + rng.randbytes(128))[:128]


def _record(fmt: int, body: bytes) -> bytes:
    return struct.pack(">II", fmt, len(body)) + body


def _flow_sample(rng: random.Random, seq: int) -> bytes:
    hdr = _record(1, struct.pack(">IIII", 1, rng.randrange(64, 1519), 4, 128) + _frame(rng))
    switch = _record(1001, struct.pack(">IIII", 10, 0, 10, 0))
    body = struct.pack(">IIIIIIII", seq, 5, 1024, seq * 1024, 0, rng.randrange(1, 48), rng.randrange(1, 48), 2)
    body += hdr + switch
    return struct.pack(">II", 1, len(body)) + body


def _counter_sample(rng: random.Random, seq: int) -> bytes:
    ifindex = rng.randrange(1, 48)
    generic = _record(1, struct.pack(">IIQIIQIIIIIIQIIIIII", ifindex, 6, 10**9, 1, 3, rng.getrandbits(40),
                                     *(rng.getrandbits(20) for _ in range(6)), rng.getrandbits(40),
                                     *(rng.getrandbits(20) for _ in range(6))))
    body = struct.pack(">III", seq, ifindex, 1) + generic
    return struct.pack(">II", 2, len(body)) + body


def make_datagrams(count: int, per_datagram: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    grams = []
    for i in range(count):
        samples = [_flow_sample(rng, i * per_datagram + j) for j in range(per_datagram)]
        if i % 10 == 0:
            samples.append(_counter_sample(rng, i))
        head = struct.pack(">II4sIIII", 5, 1, bytes([10, 0, 0, 1 + i % 16]), 0, i, i * 1000, len(samples))
        grams.append(head + b"".join(samples))
    return grams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datagrams", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=7, help="flow samples per datagram")
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    grams = make_datagrams(a.datagrams, a.samples)
    src = Source("10.0.0.1", 6343, received=time.time())
    flows = rounds = 0
    start = time.perf_counter()
    while time.perf_counter() - start < a.seconds:
        for g in grams:
            flows += len(decode(g, src).flows)
        rounds += 1
    elapsed = time.perf_counter() - start
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"sflow5 decode: {flows / elapsed:,.0f} flow samples/s, {rounds * len(grams) / elapsed:,.0f} datagrams/s"
          f" ({a.samples} x 128-byte headers per datagram, {elapsed:.1f} s, one core);"
          f" peak RSS {rss_kib / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
