"""The invariants every decoder keeps on hostile input, checked after each datagram.

- no exception but :class:`DecodeError` leaves a decoder (nor ``expire``);
- every flow is a well-formed flow tuple (types, address lengths, 64-bit integers) that the later
  stages (aggregation, rendering, JSON) take without error;
- work is bounded by the datagram: decode time <= ``BASE_S + PER_BYTE_S * bytes (+ PER_FLOW_S *
  flows released from the hold queue)``, flows <= what its bytes can hold;
- state stays under the caps of :class:`DecoderConfig` (exporters, templates per exporter, held
  datagrams per exporter, held bytes) and its own bookkeeping adds up.

A failed invariant raises :class:`Violation`. Checks for known, reported findings (see
``tests/decode/test_fuzz_regressions.py``) are listed in ``KNOWN`` and skipped unless
``FLOWPIPE_FUZZ_KNOWN=1``, so fuzzing goes on past them; they flip back on when fixed.

Template decoder input format (``steps``): a datagram sequence as repeated
``[ctrl u8][length u16][datagram]``; ``ctrl & 7`` picks one of eight exporters, ``ctrl >> 3 & 1``
its source port, ``ctrl >> 4`` how far the clock moves before the datagram (``ADVANCE``; a move
also runs ``expire``). A length past the end takes what is left.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from flowpipe.config import AggregatorConfig, DecoderConfig
from flowpipe.decode import netflow5, sflow
from flowpipe.decode.base import Decoded, DecodeError, Source
from flowpipe.decode.template_decoder import COMPILED_MAX, TemplateDecoder
from flowpipe.decode.templates import MAX_SAMPLERS, MAX_TOTAL_FIELDS

BASE_S = 0.25          # per datagram, whatever its size (GC pauses, a busy machine, instrumentation)
PER_BYTE_S = 100e-6    # measured worst case ~20 us/byte (a new template compiled per 13 bytes)
PER_FLOW_S = 20e-6     # flows released from the hold queue (data of earlier datagrams)
T0 = 1_700_000_000.0
EXPORTERS = [f"192.0.2.{i}" for i in range(1, 9)]
PORTS = (50000, 50001)
ADVANCE = (0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 5, 10, 31, 61, 121, 600)

# Findings reported to the decoders' owners; their checks are off while they stand (see module doc).
OPEN_FINDINGS: tuple[str, ...] = ()  # none open now ("held_memory" was fixed)
KNOWN = frozenset(() if os.environ.get("FLOWPIPE_FUZZ_KNOWN") == "1" else OPEN_FINDINGS)

_STEP = struct.Struct("!BH")
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_STR_FIELDS, _BYTES_FIELDS = (0, 1, 2), (11, 12, 22)


class Violation(AssertionError):
    """An invariant does not hold."""


class Slow(Violation):
    """A datagram took longer than its budget (confirmed by reruns before it is reported)."""


def fuzz_caps() -> DecoderConfig:
    """Small caps, so that fuzzing reaches them: 4 exporters, 8 templates each, 4 held datagrams."""
    return DecoderConfig(template_timeout=120.0, max_templates_per_exporter=8, max_exporters=4,
                         hold_timeout=30.0, hold_max_per_exporter=4, hold_max_bytes=8192)


def budget(size: int, flows: int = 0) -> float:
    return BASE_S + PER_BYTE_S * size + PER_FLOW_S * flows


# ---- flows ------------------------------------------------------------------------------------------

def check_flows(flows: list[tuple], limit: int, what: str) -> None:
    """Each flow well formed; no more than ``limit`` of them."""
    if len(flows) > limit:
        raise Violation(f"{what}: {len(flows)} flows, more than the {limit} its bytes can hold")
    for f in flows:
        if type(f) is not tuple or len(f) != 25:
            raise Violation(f"{what}: not a 25-field flow tuple: {f!r}")
        for i, v in enumerate(f):
            if i in _STR_FIELDS:
                ok = type(v) is str
            elif i in _BYTES_FIELDS:
                ok = type(v) is bytes and len(v) in (0, 4, 16)
            elif i == 24:
                ok = v is None or (type(v) is dict and all(type(k) is str and type(x) in (int, str)
                                                           for k, x in v.items()))
            else:
                ok = type(v) is int and _INT_MIN <= v <= _INT_MAX
            if not ok:
                raise Violation(f"{what}: flow field {i} is {v!r}")


_AGG = AggregatorConfig(flush_interval=1.0, port_rollup_threshold=3)
PIPELINE_MAX = 64  # flows per datagram sent through the later stages (all are type-checked)


def check_pipeline(flows: list[tuple]) -> None:
    """The stages after the decoder take these flows: aggregate, render, serialize as JSON."""
    if not flows:
        return
    flows = flows[:PIPELINE_MAX]
    from flowpipe.aggregate.accumulator import Accumulator
    from flowpipe.decode.rows import rows
    from flowpipe.flow import FlushBatch
    from flowpipe.render import render_batch

    acc = Accumulator(_AGG)
    acc.add(rows(flows), T0)
    out = render_batch(FlushBatch(T0, acc.drain()), "fuzz")
    json.dumps(out, separators=(",", ":"), allow_nan=False)


# ---- one datagram, stateless decoders -----------------------------------------------------------------

def timed(call: Callable[[], Decoded]) -> tuple[Decoded | None, float]:
    """``call()`` and its duration; None for DecodeError; any other exception is a Violation."""
    t = time.perf_counter()
    try:
        d: Decoded | None = call()
    except DecodeError:
        d = None
    except Exception as e:  # noqa: BLE001 - that is the finding
        raise Violation(f"{type(e).__name__} escaped the decoder: {e}") from e
    return d, time.perf_counter() - t


def _slow(call: Callable[[], object], size: int, flows: int, elapsed: float, what: str) -> None:
    """Raise when ``elapsed`` is over budget on a rerun too (a pause is not a finding)."""
    limit = budget(size, flows)
    if elapsed <= limit:
        return
    best = elapsed
    for _ in range(2):
        t = time.perf_counter()
        try:
            call()
        except Exception:  # noqa: BLE001,S110 - only the time matters here
            pass
        best = min(best, time.perf_counter() - t)
    if best > limit:
        raise Violation(f"{what}: {size}-byte datagram took {best:.3f} s, budget {limit:.3f} s")


SRC = Source("192.0.2.1", 50000, "default", T0)


def run_netflow5(data: bytes, pipeline: bool = True) -> Decoded | None:
    def call() -> Decoded:
        return netflow5.decode(data, SRC)
    d, el = timed(call)
    _slow(call, len(data), 0, el, "netflow5")
    if d is not None:
        check_flows(d.flows, max(0, (len(data) - 24) // 48), "netflow5")
        if pipeline:
            check_pipeline(d.flows)
    return d


def run_sflow(data: bytes, pipeline: bool = True) -> Decoded | None:
    def call() -> Decoded:
        return sflow.decode(data, SRC)
    d, el = timed(call)
    _slow(call, len(data), 0, el, "sflow5")
    if d is not None:
        # a flow sample takes 8 bytes of sample header and 32 of fixed fields at least
        check_flows(d.flows, len(data) // 40, "sflow5")
        if len(d.counters) > len(data) // 8:
            raise Violation(f"sflow5: {len(d.counters)} counter records from {len(data)} bytes")
        if pipeline:
            check_pipeline(d.flows)
    if len(sflow._AGENTS) > 4096:
        raise Violation(f"sflow5: agent name cache holds {len(sflow._AGENTS)} entries")
    return d


# ---- the template decoder: sequences, state, caps -----------------------------------------------------

def steps(data: bytes) -> list[tuple[int, bytes]]:
    """Parse the template harness input format into (ctrl, datagram) steps."""
    out, off, n = [], 0, len(data)
    while off + 3 <= n:
        ctrl, ln = _STEP.unpack_from(data, off)
        off += 3
        out.append((ctrl, data[off:off + ln]))
        off += ln
    return out


def pack_steps(items: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(_STEP.pack(c, min(len(d), 0xFFFF)) + d[:0xFFFF] for c, d in items)


class TemplateRun:
    """A TemplateDecoder on a fake clock, fed steps; checks every invariant after each one."""

    def __init__(self, cfg: DecoderConfig | None = None, pipeline: bool = True,
                 compiled: dict[Any, Any] | None = None, timing: bool = True) -> None:
        self.cfg = cfg or fuzz_caps()
        self.timing = timing
        self.now = T0
        self.dec = TemplateDecoder(self.cfg, clock=lambda: self.now)
        if compiled is not None:  # record decoders depend only on the layout: share them across runs
            self.dec._compiled = compiled
        self.pipeline = pipeline
        self.datagrams = 0

    def feed(self, ctrl: int, data: bytes) -> Decoded | None:
        adv = ADVANCE[ctrl >> 4]
        if adv:
            self.now += adv
            try:
                self.dec.expire(self.now)
            except Exception as e:  # noqa: BLE001
                raise Violation(f"{type(e).__name__} escaped expire(): {e}") from e
        src = Source(EXPORTERS[ctrl & 7], PORTS[ctrl >> 3 & 1], "default", self.now)
        held_bytes = self.dec.hold.bytes
        d, el = timed(lambda: self.dec.decode(data, src))
        self.datagrams += 1
        flows = len(d.flows) if d is not None else 0
        if self.timing and el > budget(len(data), flows):
            raise Slow(f"template: {len(data)}-byte datagram took {el:.3f} s (flows {flows}), "
                       f"budget {budget(len(data), flows):.3f} s")
        if d is not None:
            # every record takes at least one byte of this datagram or of held data it released
            check_flows(d.flows, len(data) + held_bytes, "template")
            if d.held not in (0, 1) or d.released < 0:
                raise Violation(f"template: held={d.held} released={d.released}")
            if self.pipeline:
                check_pipeline(d.flows)
        check_state(self.dec)
        return d

    def run(self, data: bytes) -> None:
        """Feed every step of ``data`` (the input format); see :meth:`run_steps`."""
        self.run_steps(steps(data))

    def run_steps(self, items: list[tuple[int, bytes]]) -> None:
        """Feed every step; a slow step counts only if it is slow on two replays too."""
        try:
            for ctrl, dgram in items:
                self.feed(ctrl, dgram)
        except Slow:
            if not self.timing or self.datagrams > len(items):
                raise  # a long-lived decoder cannot replay
            for _ in range(2):
                again = TemplateRun(self.cfg, self.pipeline, self.dec._compiled)
                try:
                    for ctrl, dgram in items:
                        again.feed(ctrl, dgram)
                    return
                except Slow:
                    continue
            raise


def held_memory(dec: TemplateDecoder) -> int:
    """A low estimate of the bytes the hold queue occupies (objects, not just payload)."""
    total = 0
    for h in dec.hold.entries.values():
        total += 200 + sys.getsizeof(h.sets)
        for sid, body in h.sets:
            total += 56 + (sys.getsizeof(sid) if sid > 256 else 0) + (sys.getsizeof(body) if body else 0)
    return total


def check_state(dec: TemplateDecoder) -> None:
    """Caps hold and the decoder's own counts add up."""
    cfg, reg, hold = dec.cfg, dec.registry, dec.hold
    if len(reg.exporters) > cfg.max_exporters:
        raise Violation(f"{len(reg.exporters)} exporters with state, cap {cfg.max_exporters}")
    total = fields = 0
    for addr, ex in reg.exporters.items():
        n = sum(len(dom.templates) for dom in ex.domains.values())
        if n != ex.ntemplates:
            raise Violation(f"{addr}: ntemplates {ex.ntemplates}, templates stored {n}")
        if n > cfg.max_templates_per_exporter or len(ex.domains) > cfg.max_templates_per_exporter:
            raise Violation(f"{addr}: {n} templates in {len(ex.domains)} domains, cap "
                            f"{cfg.max_templates_per_exporter}")
        for dom in ex.domains.values():
            if len(dom.samplers) > MAX_SAMPLERS:
                raise Violation(f"{addr}: {len(dom.samplers)} samplers")
            fields += sum(len(t.fields) for t in dom.templates.values())
        total += n
    if reg.fields_stored != fields or fields > MAX_TOTAL_FIELDS:
        raise Violation(f"fields stored {reg.fields_stored}, counted {fields}")
    if dec.registry.stats.templates != total:
        raise Violation(f"stats templates {dec.registry.stats.templates}, stored {total}")
    if len(dec._compiled) > COMPILED_MAX:
        raise Violation(f"{len(dec._compiled)} compiled record decoders, cap {COMPILED_MAX}")
    for addr, mine in hold.by_exporter.items():
        if len(mine) > cfg.hold_max_per_exporter:
            raise Violation(f"{addr}: {len(mine)} held, cap {cfg.hold_max_per_exporter}")
    size = sum(h.size for h in hold.entries.values())
    if hold.bytes != size or size > cfg.hold_max_bytes:
        raise Violation(f"held bytes {hold.bytes}, entries add up to {size}, cap {cfg.hold_max_bytes}")
    counted = sum(1 for h in hold.entries.values() if h.counted)
    if hold.held != counted:
        raise Violation(f"held gauge {hold.held}, counted entries {counted}")
    if sum(len(v) for v in hold.by_domain.values()) != len(hold.entries) or \
            sum(len(v) for v in hold.by_exporter.values()) != len(hold.entries):
        raise Violation("hold queue indexes disagree with its entries")
    if "held_memory" not in KNOWN:
        mem = held_memory(dec)
        if mem > 4 * cfg.hold_max_bytes:
            raise Violation(f"held data occupies ~{mem} bytes for {len(hold.entries)} entries, "
                            f"{hold.bytes} accounted, cap {cfg.hold_max_bytes}")


def describe(d: Decoded | None) -> dict[str, Any]:
    if d is None:
        return {"invalid": True}
    return {"flows": len(d.flows), "held": d.held, "released": d.released, "skipped": len(d.skipped)}
