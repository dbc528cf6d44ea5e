"""``flowpipe decode FILE.pcap``: decode the flow exports in a capture, one JSON flow per line.

For debugging a vendor's export: every UDP datagram (or those to ``--port``) is decoded as the
service would (NetFlow v5, v9, IPFIX, sFlow v5; template state carried across datagrams; a run is
short, so templates and held data do not expire during it, whatever the capture's timestamps
say: captures stitched from several files still decode), each flow is printed to stdout as JSON with readable
addresses, and a summary line per datagram status goes to stderr (``-v``: a line per datagram).
"""
from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from flowpipe.config import ConfigError, DecoderConfig, MappingConfig, load
from flowpipe.decode.base import Decoded, DecodeError, Source
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.flow import Flow
from flowpipe.pcap import PcapError, udp_datagrams

Decoder = Callable[[bytes, Source], Decoded]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode the flow exports in a pcap file (debugging)",
                       description="Decode NetFlow v5/v9, IPFIX and sFlow v5 datagrams of a pcap/pcapng file: "
                                   "one JSON flow per line on stdout, a summary line per datagram status on "
                                   "stderr.")
    p.add_argument("file", help="pcap or pcapng capture")
    p.add_argument("--port", type=int, help="only UDP datagrams to this destination port")
    p.add_argument("--mapping-config", metavar="CFG.toml",
                   help="flowpipe config whose listener [[listeners.mapping]] (the one on --port, else the "
                        "first with a mapping) and [decoder] settings apply")
    p.add_argument("-v", "--verbose", action="store_true", help="a status line per datagram on stderr")
    p.set_defaults(func=main)


def _optional(module: str) -> Decoder | None:
    try:
        return importlib.import_module(module).decode  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def _settings(path: str | None, port: int | None) -> tuple[DecoderConfig, list[MappingConfig], str]:
    if not path:
        return DecoderConfig(), [], "default"
    cfg = load(path)
    chosen = next((lst for lst in cfg.listeners if port is not None and lst.port == port), None)
    chosen = chosen or next((lst for lst in cfg.listeners if lst.mapping), None)
    if chosen is None:
        return cfg.decoder, [], "default"
    return cfg.decoder, list(chosen.mapping), chosen.namespace


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
    """Decodes datagrams in order and tallies what became of each."""

    def __init__(self, cfg: DecoderConfig, mapping: list[MappingConfig], namespace: str, out: TextIO,
                 err: TextIO, verbose: bool) -> None:
        self.templates = TemplateDecoder(cfg, mapping)
        self.v5, self.sflow = _optional("flowpipe.decode.netflow5"), _optional("flowpipe.decode.sflow")
        self.namespace, self.out, self.err, self.verbose = namespace, out, err, verbose
        self.status: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.flows = self.released = 0

    def _decoder(self, data: bytes) -> tuple[str, Decoder | None]:
        if data[:4] == b"\x00\x00\x00\x05":
            return "sflow5", self.sflow
        version = (data[0] << 8 | data[1]) if len(data) >= 2 else -1
        if version == 5:
            return "netflow5", self.v5
        if version in (9, 10):
            return ("netflow9" if version == 9 else "ipfix"), self.templates.decode
        return "", None

    def one(self, n: int, time: float, src: str, sport: int, data: bytes) -> None:
        kind, decode = self._decoder(data)
        where = f"datagram {n} from {src}:{sport}"
        if not kind:
            self.status["not a flow export"] += 1
            self._say(f"{where}: not a flow export")
            return
        if decode is None:
            self.status["unsupported"] += 1
            self._say(f"{where}: {kind} decoder not available")
            return
        try:
            d = decode(data, Source(src, sport, self.namespace, time))
        except DecodeError as e:
            self.status["invalid"] += 1
            self.reasons[e.reason] += 1
            self._say(f"{where}: {kind} invalid ({e.reason}: {e})")
            return
        self.status["held" if d.held else "decoded"] += 1
        self.released += d.released
        self.skipped.update(d.skipped)
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
        print(f"held: {s['held']} datagrams waited for a template; {self.released} released later, "
              f"{self.templates.held} never completed", file=e)
        parts = sum(len(h.sets) for h in self.templates.hold.entries.values() if not h.counted)
        if parts:
            print(f"sets never decoded: {parts} sets of decoded datagrams never got their template", file=e)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
        print(f"invalid: {s['invalid']} datagrams" + (f" ({reasons})" if reasons else ""), file=e)
        if self.skipped:
            print("skipped parts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())), file=e)
        for k in ("unsupported", "not a flow export"):
            if s[k]:
                print(f"{k}: {s[k]} datagrams", file=e)


def main(args: argparse.Namespace) -> int:
    try:
        cfg, mapping, namespace = _settings(args.mapping_config, args.port)
    except ConfigError as e:
        print(f"flowpipe: config error: {e}", file=sys.stderr)
        return 2
    try:
        grams = udp_datagrams(args.file)
    except (OSError, PcapError) as e:
        print(f"flowpipe: cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    run = Run(cfg, mapping, namespace, sys.stdout, sys.stderr, args.verbose)
    try:
        for n, g in enumerate(grams, 1):
            if args.port is None or g.dport == args.port:
                run.one(n, g.time, g.src, g.sport, g.payload)
        sys.stdout.flush()
    except BrokenPipeError:  # piped into head & co: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    run.summary()
    return 0
