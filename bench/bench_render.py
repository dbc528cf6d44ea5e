"""Rendering throughput: aggregated flows -> payload dicts (``render_batch``), and orjson of the result.

Builds ``--flows`` distinct synthetic aggregated flows (clients and servers drawn from address
pools, ephemeral client ports, 8 exporters, 4 interfaces, a few next hops, ~10% IPv6, some
extras, reverse-DNS names for a quarter of the servers; ``--unique``: every address new) and
renders them the way the service's renderer does: ``render_batch`` on slices of ``--chunk``
flows. Prints µs per flow and flows/s with cold caches (every cache of the render module cleared
before the pass) and warm caches (the same flows again), and the orjson time of the output.
Not a test.

    .venv/bin/python bench/bench_render.py [--flows 65536] [--repeat 5] [--tags] [--no-names]
                                           [--unique] [--module PATH]

``--module PATH`` times a render module loaded from a file instead (e.g. a copy of an older
``flowpipe/render/payload.py``), so before/after figures come from the same script. "gc off" is the
warm pass with the cyclic garbage collector disabled: the rendering work alone, without the
collections that the retained output triggers.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import orjson

from flowpipe.flow import FlushBatch, make_flow

EXPORTERS = [f"192.0.2.{i + 1}" for i in range(8)]
SERVICE_PORTS = [443, 80, 53, 22, 8080, 3306, 5432, 123]
TAGS = {"env": "prod", "site": "par1"}


def synthetic_flows(n: int, unique: bool = False, seed: int = 1) -> tuple[list[list[Any]], dict[bytes, str]]:
    """``n`` distinct aggregated flows as the accumulator emits them, and reverse-DNS names for ~1/4 of the servers.

    Clients come from a pool of 16,384 IPv4 + 2,048 IPv6 addresses, servers from 2,048 + 512
    (``unique``: every address new); half the flows are replies (server -> client). Client
    ports are ephemeral, server ports well known; half the exporters report MACs (the L2
    neighbour's on each interface).
    """
    rnd = random.Random(seed)

    def v4(first: int) -> bytes:
        return bytes([first, rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)])

    def v6(prefix: str) -> bytes:
        return bytes.fromhex(prefix) + rnd.randbytes(16 - len(prefix) // 2)

    clients = [v4(10) for _ in range(16384)] + [v6("20010db8") for _ in range(2048)]
    servers = [v4(172) for _ in range(2048)] + [v6("20010db8ffff") for _ in range(512)]
    macs = {(e, i): 0x020000000000 + rnd.randrange(1 << 32) for e in range(len(EXPORTERS)) for i in range(1, 5)}
    names = {s: f"srv-{i}.example.internal" for i, s in enumerate(servers) if i % 4 == 0}
    flows: list[list[Any]] = []
    for i in range(n):
        six = rnd.random() < 0.1
        if unique:
            client, server = (v6("20010db8"), v6("20010db8ffff")) if six else (v4(10), v4(172))
            if i % 4 == 0:
                names[server] = f"srv-{i}.example.internal"
        else:
            client = clients[16384 + rnd.randrange(2048)] if six else clients[rnd.randrange(16384)]
            server = servers[2048 + rnd.randrange(512)] if six else servers[rnd.randrange(2048)]
        proto = rnd.choice((6, 6, 6, 17, 17, 1))
        cport = rnd.randrange(1024, 65536) if proto != 1 else 0
        sport = rnd.choice(SERVICE_PORTS) if proto != 1 else 0
        cmask, smask = (48, 64) if six else (client[1] % 2 * 8 + 16, server[2] % 2 * 24)
        reply = i % 2 == 1
        src, dst, src_port, dst_port, src_mask, dst_mask = (
            (server, client, sport, cport, smask, cmask) if reply else (client, server, cport, sport, cmask, smask))
        exporter, in_if, out_if = i % len(EXPORTERS), rnd.randrange(1, 5), rnd.randrange(1, 5)
        mac = exporter % 2 == 0
        flows.append(list(make_flow(
            type="netflow9", exporter=EXPORTERS[exporter], namespace="default",
            sampling_rate=rnd.choice((1, 100, 1000)), direction=rnd.randrange(2),
            start=1_700_000_000 + rnd.randrange(60), end=1_700_000_060 + rnd.randrange(60),
            bytes=rnd.randrange(40, 10**7), packets=rnd.randrange(1, 10**4), ether_type=0x86DD if six else 0x0800,
            ip_protocol=proto, src_ip=src, dst_ip=dst, src_port=src_port, dst_port=dst_port,
            src_mac=macs[exporter, in_if] if mac else 0, dst_mac=macs[exporter, out_if] if mac else 0,
            src_mask=src_mask, dst_mask=dst_mask, in_if=in_if, out_if=out_if,
            tcp_flags=rnd.randrange(256) if proto == 6 else 0,
            next_hop=(bytes.fromhex("fe80" + "00" * 13) if six else bytes([10, 255, 0])) + bytes([rnd.randrange(1, 4)]),
            tos=0, extras={"vlan": rnd.randrange(1, 10)} if rnd.random() < 0.1 else None)))
    return flows, names


def load_module(path: str | None) -> ModuleType:
    if path is None:
        import flowpipe.render
        return flowpipe.render
    spec = importlib.util.spec_from_file_location("render_under_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def clear_caches(mod: ModuleType) -> None:
    """Empty every cache of the module: its lru_caches, and whatever its ``clear_caches`` clears."""
    for value in vars(mod).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()
    clear = getattr(mod, "clear_caches", None)
    if callable(clear):
        clear()


def one_pass(render_batch: Callable[..., list[dict[str, Any]]], flows: list[list[Any]], names: dict[bytes, str],
             chunk: int, tags: dict[str, str] | None) -> tuple[float, list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []
    t = time.perf_counter()
    for i in range(0, len(flows), chunk):
        out += render_batch(FlushBatch(1_700_000_120.5, flows[i:i + chunk], names), "node-1", tags)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flows", type=int, default=65536)
    ap.add_argument("--chunk", type=int, default=2000, help="flows per render_batch call (the service's step)")
    ap.add_argument("--repeat", type=int, default=5, help="passes of each kind; the median is printed")
    ap.add_argument("--tags", action="store_true", help="top-level tags (additional_fields on every flow)")
    ap.add_argument("--no-names", action="store_true", help="no reverse-DNS names")
    ap.add_argument("--unique", action="store_true", help="every address new (worst case for caches)")
    ap.add_argument("--module", help="a copy of flowpipe/render/payload.py to load instead of flowpipe.render")
    args = ap.parse_args()

    mod = load_module(args.module)
    flows, names = synthetic_flows(args.flows, args.unique)
    if args.no_names:
        names = {}
    tags = TAGS if args.tags else None
    n = len(flows)

    cold, warm, no_gc, dumps = [], [], [], []
    body = b""
    for _ in range(args.repeat):
        clear_caches(mod)
        gc.collect()
        cold.append(one_pass(mod.render_batch, flows, names, args.chunk, tags)[0])
        gc.collect()
        elapsed, out = one_pass(mod.render_batch, flows, names, args.chunk, tags)
        warm.append(elapsed)
        t = time.perf_counter()
        body = orjson.dumps(out)
        dumps.append(time.perf_counter() - t)
        del out
        gc.collect()
        gc.disable()
        no_gc.append(one_pass(mod.render_batch, flows, names, args.chunk, tags)[0])
        gc.enable()

    print(f"render module: {mod.__file__}")
    print(f"{n} flows ({'unique' if args.unique else 'pooled'} addresses), render_batch on slices of {args.chunk}, "
          f"tags={'on' if tags else 'off'}, names for {len(names)} addresses; "
          f"median of {args.repeat} passes (python {sys.version.split()[0]})")
    for label, times in (("render, cold caches", cold), ("render, warm caches", warm),
                         ("render, warm, gc off", no_gc), ("orjson.dumps", dumps)):
        s = statistics.median(times)
        print(f"  {label + ':':22s}{s / n * 1e6:6.2f} µs/flow  {n / s:>10,.0f} flows/s  "
              f"(min {min(times) / n * 1e6:.2f}, max {max(times) / n * 1e6:.2f})")
    print(f"  JSON: {len(body) / n:.0f} bytes/flow")


if __name__ == "__main__":
    main()
