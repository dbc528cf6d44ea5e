"""Run the real service in-process for tests: real UDP sockets on 127.0.0.1, real HTTP backend."""
from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from flowpipe.config import (
    AggregatorConfig,
    Config,
    DecoderConfig,
    ForwarderConfig,
    ListenerConfig,
    MetricsConfig,
    ReverseDnsConfig,
)
from flowpipe.metrics import Metrics
from flowpipe.service import Service


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free on 127.0.0.1 just now (UDP unless ``kind`` says otherwise)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_run(config: Any, **popen: Any) -> subprocess.Popen[str]:
    """``flowpipe run --config config`` as a subprocess, stderr piped as text, without the test
    environment's FLOWPIPE_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPIPE_")}
    return subprocess.Popen([sys.executable, "-m", "flowpipe.cli", "run", "--config", str(config)],
                            stderr=subprocess.PIPE, text=True, env=env, **popen)


def make_config(url: str, listeners: list[dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Config:
    """A config on ephemeral ports (listeners on 127.0.0.1 port 0, metrics on a free port)."""
    lcfg = [ListenerConfig(**{"bind_host": "127.0.0.1", **d}) for d in (listeners or [{"flow_type": "netflow5"}])]
    for lc in lcfg:
        lc.port = 0  # (after validation, where 0 means the default port) bind any free port
    agg = {"flush_interval": 1.0, "flush_tick": 0.2, "port_rollup_disabled": True, **sections.get("aggregator", {})}
    fwd = {"url": url, "retry_initial": 0.1, "retry_max": 0.5, **sections.get("forwarder", {})}
    return Config(host="test-host", listeners=lcfg, aggregator=AggregatorConfig(**agg),
                  forwarder=ForwarderConfig(**fwd), decoder=DecoderConfig(**sections.get("decoder", {})),
                  reverse_dns=ReverseDnsConfig(**sections.get("reverse_dns", {})),
                  metrics=MetricsConfig(listen="127.0.0.1:0"))


@asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[Service]:
    """Start the service; on exit stop it gracefully and wait until it has delivered everything."""
    svc = Service(cfg, Metrics())
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        try:
            yield svc
        finally:
            svc.stop()


def send_udp(port: int, payloads: list[bytes], source: str = "127.0.0.1", sport: int = 0) -> None:
    """Send datagrams to 127.0.0.1:port from ``source`` (a loopback address: the exporter's identity),
    from UDP port ``sport`` (any when 0; NetFlow v9/IPFIX template scope includes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((source, sport))
        for p in payloads:
            s.sendto(p, ("127.0.0.1", port))


def metric(svc: Service, name: str, **labels: str) -> float:
    return svc.metrics.registry.get_sample_value(name, labels) or 0.0


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def sums(flows: list[dict[str, Any]]) -> dict[tuple, list[int]]:
    """(src, dst, proto number, sport, dport) -> [bytes, packets] over payload flow objects."""
    from flowpipe.render import PROTOCOLS
    names = {v: k for k, v in PROTOCOLS.items()}
    out: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for f in flows:
        proto = f["ip_protocol"]
        k = (ipaddress.ip_address(f["source"]["ip"]).compressed,
             ipaddress.ip_address(f["destination"]["ip"]).compressed,
             names.get(proto, int(proto) if proto.isdigit() else proto),
             int(f["source"]["port"]), int(f["destination"]["port"]))
        out[k][0] += f["bytes"]
        out[k][1] += f["packets"]
    return dict(out)
