"""Decode throughput of NetFlow v9 and IPFIX on one core (not a test).

Synthesizes a realistic 20-field IPv4 template (counters, addresses, ports, interfaces, masks,
next hop, AS numbers, times, sampler id) and datagrams of 24-30 records, decodes them through one
TemplateDecoder for a few seconds per version, and prints decoded flows/s and the peak RSS.

    .venv/bin/python bench/bench_decode_v9_ipfix.py [--seconds 3]
"""
from __future__ import annotations

import argparse
import random
import resource
import struct
import time

from flowpipe.config import DecoderConfig
from flowpipe.decode.base import Source
from flowpipe.decode.template_decoder import TemplateDecoder

# (element id, length): a typical router v4 template
FIELDS = [(1, 8), (2, 8), (8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (10, 4), (14, 4),
          (9, 1), (13, 1), (15, 4), (16, 4), (17, 4), (61, 1), (48, 2), (22, 4), (21, 4)]
REC = struct.Struct("!QQ4s4sHHBBBIIBB4sIIBHII")
TID = 300


def _record(rng: random.Random, uptime: int) -> bytes:
    return REC.pack(rng.randrange(40, 1_500_000), rng.randrange(1, 1000),
                    bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)]),
                    bytes([192, 0, 2, rng.randrange(1, 255)]), rng.randrange(1024, 65535),
                    rng.choice((80, 443, 53, 22)), rng.choice((6, 17)), 0, rng.randrange(256),
                    rng.randrange(1, 64), rng.randrange(1, 64), 24, 24, bytes([10, 0, 0, 1]),
                    65001, 65002, 0, 1, uptime - rng.randrange(1000, 60000), uptime - rng.randrange(0, 1000))


def _template_body(ipfix: bool) -> bytes:
    body = struct.pack("!HH", TID, len(FIELDS)) + b"".join(struct.pack("!HH", i, ln) for i, ln in FIELDS)
    return struct.pack("!HH", 2 if ipfix else 0, 4 + len(body)) + body


def datagrams(ipfix: bool, n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    uptime, secs = 3_600_000, 1_700_000_000
    for seq in range(n):
        recs = b"".join(_record(rng, uptime) for _ in range(rng.randrange(24, 31)))
        sets = (_template_body(ipfix) if seq == 0 else b"") + struct.pack("!HH", TID, 4 + len(recs)) + recs
        if ipfix:
            out.append(struct.pack("!HHIII", 10, 16 + len(sets), secs, seq, 1) + sets)
        else:
            out.append(struct.pack("!HHIIII", 9, 30, uptime, secs, seq, 1) + sets)
    return out


def run(ipfix: bool, seconds: float) -> float:
    grams = datagrams(ipfix, 2000)
    dec = TemplateDecoder(DecoderConfig())
    src = Source("192.0.2.1", 2055)
    dec.decode(grams[0], src)
    flows, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for g in grams[1:]:
            flows += len(dec.decode(g, src).flows)
    return flows / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    print(f"netflow9: {run(False, a.seconds):,.0f} flows/s")
    print(f"ipfix:    {run(True, a.seconds):,.0f} flows/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
