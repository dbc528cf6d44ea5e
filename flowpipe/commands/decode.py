"""``flowpipe decode FILE.pcap``: decode the flow exports in a capture, one JSON flow per line.

For debugging a vendor's export: every UDP datagram (or those to ``--port``) is decoded as the
service would (NetFlow v5, v9, IPFIX, sFlow v5; template state carried across datagrams; a run is
short, so templates and held data do not expire during it, whatever the capture's timestamps
say: captures stitched from several files still decode), each flow is printed to stdout as JSON with readable
addresses, and a summary line per datagram status goes to stderr (``-v``: a line per datagram).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import sys
from collections import Counter
from typing import Any, TextIO

from flowpipe.commands import add
from flowpipe.config import ConfigError, DecoderConfig, ListenerConfig, load
from flowpipe.decode.base import DecodeError, Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.flow import Flow, FlushBatch
from flowpipe.pcap import PcapError, udp_datagrams
from flowpipe.render import render_batch

DESCRIPTION = ("Decode NetFlow v5/v9, IPFIX and sFlow v5 datagrams of a pcap/pcapng file: "
               "one JSON flow per line on stdout, a summary line per datagram status on "
               "stderr.")


def register(sub: argparse._SubParsersAction) -> None:
    p = add(sub, "decode", main, "decode the flow exports in a pcap file (debugging)", DESCRIPTION)
    p.add_argument("file", help="pcap or pcapng capture")
    p.add_argument("--port", type=int, help="only UDP datagrams to this destination port")
    p.add_argument("--mapping-config", metavar="CFG.toml",
                   help="flowpipe config whose [decoder] settings and listener options (mapping, "
                        "exporter_address, exporters, passthrough_unknown) apply: the listener on --port, else "
                        "the first with a mapping, else the first NetFlow/IPFIX one")
    p.add_argument("--payload", action="store_true",
                   help="print each flow as the backend receives it (the payload renderer's output, one flow "
                        "per decoded record: no aggregation) instead of the decoder's record form")
    p.add_argument("-v", "--verbose", action="store_true", help="a status line per datagram on stderr")


def _settings(path: str | None, port: int | None) -> tuple[DecoderConfig, ListenerConfig | None]:
    """The [decoder] settings and the listener whose options apply (on --port, else the first with
    a mapping, else the first netflow one)."""
    if not path:
        return DecoderConfig(), None
    cfg = load(path)
    nf = [lst for lst in cfg.listeners if lst.flow_type != "sflow5"]
    chosen = next((lst for lst in nf if port is not None and lst.port == port), None)
    chosen = chosen or next((lst for lst in nf if lst.mapping), None) or (nf[0] if nf else None)
    return cfg.decoder, chosen


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else raw.hex()


def _mac(v: int) -> str:
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def flow_json(t: tuple) -> dict[str, Any]:
    """A flow tuple as a JSON-able dict: addresses and MACs as text."""
    d = Flow._make(t)._asdict()
    for k in ("src_ip", "dst_ip", "next_hop"):
        d[k] = _addr(d[k])
    for k in ("src_mac", "dst_mac"):
        d[k] = _mac(d[k] & 0xFFFFFFFFFFFF)
    return d


class Run:
    """Decodes datagrams in order, as the service's decoders would, and tallies what became of each."""

    def __init__(self, cfg: DecoderConfig, listener: ListenerConfig | None, out: TextIO, err: TextIO,
                 verbose: bool) -> None:
        self.netflow = DatagramDecoder("netflow9", cfg, list(listener.mapping) if listener else [], listener)
        self.sflow = DatagramDecoder("sflow5", cfg, [])
        self.namespace = listener.namespace if listener else "default"
        self.out, self.err, self.verbose = out, err, verbose
        self.status: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.flows = self.released = 0
        self.payload = False
        self.host = ""
        self.tags: dict[str, str] = {}

    def _decoder(self, data: bytes) -> tuple[str, DatagramDecoder | None]:
        if data[:4] == b"\x00\x00\x00\x05":
            return "sflow5", self.sflow
        version = (data[0] << 8 | data[1]) if len(data) >= 2 else -1
        kind = {5: "netflow5", 9: "netflow9", 10: "ipfix"}.get(version, "")
        return kind, (self.netflow if kind else None)

    def one(self, n: int, time: float, src: str, sport: int, data: bytes) -> None:
        kind, decode = self._decoder(data)
        where = f"datagram {n} from {src}:{sport}"
        if not kind:
            self.status["not a flow export"] += 1
            self._say(f"{where}: not a flow export")
            return
        assert decode is not None
        try:
            d = decode.decode(data, Source(src, sport, self.namespace, time))
        except DecodeError as e:
            self.status["invalid"] += 1
            self.reasons[e.reason] += 1
            self._say(f"{where}: {kind} invalid ({e.reason}: {e})")
            return
        self.status["held" if d.held else "decoded"] += 1
        self.released += d.released
        self.skipped.update(d.skipped)
        if self.payload and d.flows:
            batch = FlushBatch(time, [list(t) for t in d.flows])
            for obj in render_batch(batch, self.host, self.tags):
                self.out.write(json.dumps(obj) + "\n")
        else:
            for t in d.flows:
                self.out.write(json.dumps({"datagram": n, **flow_json(t)}) + "\n")
        self.flows += len(d.flows)
        state = "held (waiting for a template)" if d.held else "decoded"
        extra = f", released {d.released} held" if d.released else ""
        extra += f", skipped {', '.join(d.skipped)}" if d.skipped else ""
        self._say(f"{where}: {kind} {state}, {len(d.flows)} flows{extra}")

    def _say(self, line: str) -> None:
        if self.verbose:
            print(line, file=self.err)

    def summary(self) -> None:
        s, e = self.status, self.err
        print(f"decoded: {s['decoded']} datagrams, {self.flows} flows", file=e)
        never = self.netflow.expire(float("inf"))  # the capture is over: what still waits never completes
        print(f"held: {s['held']} datagrams waited for a template; {self.released} released later, "
              f"{never} never completed", file=e)
        templates = self.netflow.templates
        if templates is not None and templates.hold.stats.parts_dropped:
            print(f"sets never decoded: {templates.hold.stats.parts_dropped} sets of decoded datagrams never got their "
                  "template", file=e)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
        print(f"invalid: {s['invalid']} datagrams" + (f" ({reasons})" if reasons else ""), file=e)
        if self.skipped:
            print("skipped parts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())), file=e)
        for k in ("not a flow export",):
            if s[k]:
                print(f"{k}: {s[k]} datagrams", file=e)


def main(args: argparse.Namespace) -> int:
    try:
        cfg, listener = _settings(args.mapping_config, args.port)
    except ConfigError as e:
        print(f"flowpipe: config error: {e}", file=sys.stderr)
        return 2
    try:
        grams = udp_datagrams(args.file)
    except (OSError, PcapError) as e:
        print(f"flowpipe: cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    run = Run(cfg, listener, sys.stdout, sys.stderr, args.verbose)
    run.payload = args.payload
    run.host = socket.gethostname()
    other_ports: Counter[int] = Counter()
    try:
        for n, g in enumerate(grams, 1):
            if args.port is None or g.dport == args.port:
                run.one(n, g.time, g.src, g.sport, g.payload)
            else:
                other_ports[g.dport] += 1
        sys.stdout.flush()
    except BrokenPipeError:  # piped into head & co: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    run.summary()
    if args.port is not None and not sum(run.status.values()):
        seen = ", ".join(f"{p} ({c})" for p, c in other_ports.most_common(5))
        print(f"hint: no UDP datagram in {args.file} goes to port {args.port}"
              + (f"; the capture's destination ports (datagrams): {seen}" if seen else "; it has no UDP datagrams")
              + (f"; try --port {other_ports.most_common(1)[0][0]} or leave --port out" if seen else ""),
              file=sys.stderr)
    return 0
