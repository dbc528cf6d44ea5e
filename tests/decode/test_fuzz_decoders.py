"""Structure-aware fuzzing of every decoder with hypothesis (the coverage-guided runs are in fuzz/).

Valid datagrams -- made with the flowpipe.export encoders or assembled here field by field, and
the real captures when ../shared/captures is there -- are mutated where it hurts (lengths,
counts, ids, truncation, bit flips, duplicated regions) and fed to the decoders; NetFlow v9 and
IPFIX also as sequences that interleave templates, options, data, withdrawals and clock jumps
over several exporters, and as a state machine that keeps one decoder across steps. After every
datagram fuzz.checks asserts the invariants: only DecodeError escapes, flows are well formed and
go through aggregation and rendering, time and output are bounded by the datagram's size, and
template/hold state stays under the DecoderConfig caps.

FLOWPIPE_FUZZ_EXAMPLES scales the number of examples (default 200 per test).
"""
from __future__ import annotations

import os
import random
import struct
import tracemalloc
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from flowpipe import export as sfl
from flowpipe.config import DecoderConfig
from flowpipe.decode.base import Decoded, DecodeError, Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.template_decoder import MAX_RECORDS_PER_DATAGRAM
from flowpipe.export import encode_v5
from fuzz import checks, seeds, structure

T = TypeVar("T")
EXAMPLES = int(os.environ.get("FLOWPIPE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


@cache
def _captures(prefix: str) -> tuple[tuple[bytes, ...], ...]:
    return tuple(tuple(grams) for _, grams in seeds.capture_payloads(prefix))


def _flat(prefixes: tuple[str, ...]) -> list[bytes]:
    return [g for p in prefixes for grams in _captures(p) for g in grams]


def one_of_list(items: list[T]) -> st.SearchStrategy[T]:
    """sampled_from without the (huge) repr of every datagram in failure reports."""
    return st.integers(0, len(items) - 1).map(items.__getitem__)


# ---- strategies ---------------------------------------------------------------------------------

u8, u16, u32, u64 = (st.integers(0, (1 << n) - 1) for n in (8, 16, 32, 64))
addr4 = st.binary(min_size=4, max_size=4)


@st.composite
def v5_datagrams(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(1, 30))
    recs = draw(st.lists(st.tuples(addr4, addr4, addr4, u16, u16, u32, u32, u32, u32, u16, u16, u8, u8, u8, u16,
                                   u16, st.integers(0, 32), st.integers(0, 32)), min_size=n, max_size=n))
    return encode_v5(recs, draw(u32), draw(u32), draw(u32), unix_nsecs=draw(u32), engine_type=draw(u8),
                     engine_id=draw(u8), sampling_interval=draw(st.integers(0, (1 << 14) - 1)),
                     sampling_mode=draw(st.integers(0, 3)))


def mutated(valid: st.SearchStrategy[bytes], max_rounds: int = 4) -> st.SearchStrategy[bytes]:
    return st.builds(lambda d, r, n: structure.mutate(d, r, n), valid, st.randoms(use_true_random=False),
                     st.integers(0, max_rounds))


def v5_inputs() -> st.SearchStrategy[bytes]:
    valid = st.one_of(v5_datagrams(), one_of_list(seeds.v5_seeds() + _flat(("nf5_",))))
    return st.one_of(mutated(valid), st.binary(max_size=200).map(lambda b: b"\x00\x05" + b))


# sFlow: flow samples from the encoders (raw header, switch, router, gateway), counters, odd formats
@st.composite
def sflow_samples(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(("flow", "flow", "counters", "expanded", "other")))
    if kind == "counters":
        recs = [sfl.interface_counters_record(sfl.InterfaceCounters(draw(u32), in_octets=draw(u64)))
                for _ in range(draw(st.integers(0, 3)))]
        return sfl.counter_sample(draw(u32), draw(st.integers(0, 2**24 - 1)), recs)
    if kind == "other":
        fmt = draw(st.sampled_from((5, 6, 0x1001, 2 << 12 | 1)))
        body = draw(st.binary(max_size=64))
        return struct.pack(">II", fmt, len(body)) + body
    v6 = draw(st.booleans())
    a, b = (draw(st.binary(min_size=16, max_size=16)) for _ in "ab") if v6 else (draw(addr4), draw(addr4))
    proto = draw(st.sampled_from((6, 17, 1, 58, 47)))
    frame = draw(st.integers(120, 9000))
    hdr = sfl.packet_header(a, b, proto, draw(u16), draw(u16), draw(u8), draw(u8), frame,
                            draw(st.binary(min_size=6, max_size=6)), draw(st.binary(min_size=6, max_size=6)),
                            vlan=draw(st.integers(0, 4095)))
    hdr = hdr[:draw(st.integers(0, len(hdr)))] if draw(st.booleans()) else hdr
    recs = [sfl.raw_header_record(hdr, frame, protocol=draw(st.sampled_from((1, 1, 11, 12, 13, 99))))]
    nh = draw(st.binary(min_size=16, max_size=16)) if v6 else draw(addr4)
    if draw(st.booleans()):
        recs.append(sfl.extended_router(nh, draw(st.integers(0, 128)), draw(st.integers(0, 128))))
    if draw(st.booleans()):
        recs.append(sfl.extended_gateway(nh, draw(u32), draw(u32), draw(u32)))
    if draw(st.booleans()):
        recs.append(sfl.extended_switch(draw(u16), draw(u16)))
    recs = draw(st.permutations(recs))
    if kind == "expanded":  # format 3: expanded flow sample, hand assembled
        body = struct.pack(">IIIIIIIIIII", draw(u32), 0, draw(u32), draw(u32), draw(u32), 0, 0, draw(u32),
                           draw(st.integers(0, 2)), draw(u32), len(recs)) + b"".join(recs)
        return struct.pack(">II", 3, len(body)) + body
    return sfl.flow_sample(draw(u32), draw(u32), draw(u32), draw(u32), 0, draw(st.integers(0, 2**30 - 1)),
                           draw(u32), recs)


@st.composite
def sflow_datagrams(draw: st.DrawFn) -> bytes:
    agent = draw(st.sampled_from(("192.0.2.1", "2001:db8::1")))
    samples = draw(st.lists(sflow_samples(), max_size=6))
    return sfl.encode_sflow(agent, draw(u32), draw(u32), draw(u32), samples)


def sflow_inputs() -> st.SearchStrategy[bytes]:
    valid = st.one_of(sflow_datagrams(), one_of_list(seeds.sflow_seeds() + _flat(("sflow5_",))))
    return st.one_of(mutated(valid), st.binary(max_size=300).map(lambda b: b"\x00\x00\x00\x05" + b))


# NetFlow v9 / IPFIX, assembled here: templates with odd fields, data for them, options, withdrawals
ELEMENTS = [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 21, 22, 23, 24, 27, 28, 29, 30, 34, 48, 50,
            56, 57, 60, 61, 62, 63, 80, 81, 85, 86, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 182, 183,
            180, 181, 231, 256, 298, 302, 305, 306, 309, 310, 322, 323, 324, 325,
            148, 232, 233, 299, 365, 366, 33002, 40005]  # (vendor rules: Cisco ASA NSEL, Cisco WLC)
LENGTHS = [1, 2, 3, 4, 6, 8, 16, 1, 2, 4, 8, 0, 5, 7, 9, 17, 65535]


@st.composite
def field_specs(draw: st.DrawFn, ipfix: bool) -> bytes:
    eid = draw(st.one_of(st.sampled_from(ELEMENTS), st.integers(1, 0x7FFF)))
    ln = draw(st.one_of(st.sampled_from(LENGTHS), st.integers(0, 300)))
    if ipfix and draw(st.integers(0, 7)) == 0:
        return struct.pack("!HHI", eid | 0x8000, ln, draw(st.sampled_from((29305, 9, 5951, 0))))
    return struct.pack("!HH", eid, ln)


@st.composite
def template_plan(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """A sequence of (ctrl, datagram): v9 or IPFIX from up to 8 exporters, clock moves, damage."""
    ipfix = draw(st.booleans())
    tids = draw(st.lists(st.one_of(st.integers(256, 270), st.sampled_from((0, 1, 2, 3, 255, 65535))),
                         min_size=1, max_size=4))
    layouts: dict[int, list[int]] = {}  # tid -> field lengths (for data), from the last template sent
    out = []
    for _ in range(draw(st.integers(1, 8))):
        sets = []
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(("tpl", "data", "data", "opt", "withdraw", "raw", "many")))
            tid = draw(st.sampled_from(tids))
            if kind == "tpl":
                specs = draw(st.lists(field_specs(ipfix), min_size=0, max_size=12))
                lens = []
                for s in specs:
                    lens.append(struct.unpack_from("!H", s, 2)[0])
                layouts[tid] = lens
                body = struct.pack("!HH", tid, len(specs)) + b"".join(specs)
                sets.append(struct.pack("!HH", 2 if ipfix else 0, 4 + len(body)) + body)
            elif kind == "opt":
                specs = draw(st.lists(field_specs(ipfix), min_size=1, max_size=6))
                scope = draw(st.integers(0, len(specs)))
                if ipfix:
                    body = struct.pack("!HHH", tid, len(specs), scope) + b"".join(specs)
                else:
                    body = struct.pack("!HHH", tid, 4 * scope, 4 * (len(specs) - scope)) + b"".join(specs)
                layouts[tid] = [struct.unpack_from("!H", s, 2)[0] for s in specs]
                sets.append(struct.pack("!HH", 3 if ipfix else 1, 4 + len(body)) + body)
            elif kind == "data":
                lens = layouts.get(tid, [draw(st.integers(1, 20))])
                recs = []
                for _ in range(draw(st.integers(0, 5))):
                    rec = b""
                    for ln in lens:
                        if ln == 65535:
                            vl = draw(st.sampled_from((0, 1, 5, 254, 255, 300)))
                            rec += (bytes([vl]) if vl < 255 else b"\xff" + struct.pack("!H", vl)) + bytes(vl % 256)
                        else:
                            rec += draw(st.binary(min_size=min(ln, 64), max_size=min(ln, 64))) + bytes(max(0, ln - 64))
                    recs.append(rec)
                body = b"".join(recs) + bytes(draw(st.integers(0, 3)))
                sets.append(struct.pack("!HH", tid if tid >= 256 else 256 + tid, 4 + len(body)) + body)
            elif kind == "withdraw":
                wid = draw(st.sampled_from((tid, 2, 3)))
                sets.append(struct.pack("!HHHH", 3 if wid == 3 and ipfix else 2 if ipfix else 0, 8, wid, 0))
            elif kind == "many":  # a run of tiny data sets, for templates never sent
                first, n = draw(st.integers(256, 65000)), draw(st.integers(1, 600))
                size = draw(st.sampled_from((0, 0, 1, 4)))
                sets.append(b"".join(_set(first + (k % 500), bytes(size)) for k in range(n)))
            else:
                sets.append(draw(st.binary(max_size=40)))
        body = b"".join(sets)
        if ipfix:
            dgram = struct.pack("!HHIII", 10, 16 + len(body), draw(u32), draw(u32), draw(st.integers(0, 2)))
        else:
            dgram = struct.pack("!HHIIII", 9, len(sets), draw(u32), draw(u32), draw(u32), draw(st.integers(0, 2)))
        dgram += body
        rounds = draw(st.sampled_from((0, 0, 1, 2, 3)))
        if rounds:
            dgram = structure.mutate(dgram, draw(st.randoms(use_true_random=False)), rounds)
            if ipfix and draw(st.booleans()):
                dgram = structure.fix_lengths(dgram)
        out.append((draw(u8), dgram))
    return out


@st.composite
def seed_plan(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """An encoder-made or captured sequence, each datagram mutated or not, exporters/clock drawn."""
    pool = [list(s) for s in seeds.template_sequences()] + [list(g) for p in ("nf9_", "ipfix_") for g in _captures(p)]
    seq = draw(one_of_list(pool))
    if len(seq) > 12:
        start = draw(st.integers(0, len(seq) - 12))
        seq = seq[start:start + 12]
    if draw(st.booleans()):
        seq = draw(st.permutations(seq))  # data before templates, repeats of templates
    rng = draw(st.randoms(use_true_random=False))
    ctrl = draw(u8)
    out = []
    for d in seq:
        if draw(st.integers(0, 3)) == 0:
            ctrl = draw(u8)
        if draw(st.booleans()):
            d = structure.mutate(d, rng, draw(st.integers(1, 3)))
            if draw(st.booleans()):
                d = structure.fix_lengths(d)
        out.append((ctrl & 0x0F if draw(st.integers(0, 3)) else ctrl, d))
    return out


# ---- stateless decoders ---------------------------------------------------------------------------

@pytest.mark.slow
@FUZZ
@given(v5_inputs())
def test_netflow5_mutations_keep_the_invariants(data: bytes) -> None:
    checks.run_netflow5(data)


@pytest.mark.slow
@FUZZ
@given(sflow_inputs())
def test_sflow_mutations_keep_the_invariants(data: bytes) -> None:
    checks.run_sflow(data)


@FUZZ
@given(st.sampled_from(("netflow5", "netflow9", "ipfix", "sflow5")), st.binary(max_size=400),
       st.sampled_from((b"", b"\x00\x05", b"\x00\x09", b"\x00\x0a", b"\0\0\0\x05", b"\0\0\0\x05\0\0\0\x01")))
def test_any_bytes_to_any_listener_raise_only_decode_error(flow_type: str, tail: bytes, head: bytes) -> None:
    dec = DatagramDecoder(flow_type, checks.fuzz_caps(), [])
    data = head + tail
    try:
        d = dec.decode(data, checks.SRC)
    except DecodeError:
        return
    checks.check_flows(d.flows, len(data), flow_type)
    checks.check_pipeline(d.flows)


# ---- template decoder: sequences and long-lived state --------------------------------------------

@pytest.mark.slow
@FUZZ
@given(template_plan())
def test_v9_ipfix_assembled_sequences_keep_the_invariants(plan: list[tuple[int, bytes]]) -> None:
    checks.TemplateRun().run_steps(plan)


@pytest.mark.slow
@FUZZ
@given(seed_plan())
def test_v9_ipfix_encoder_and_capture_sequences_mutated_keep_the_invariants(plan: list[tuple[int, bytes]]) -> None:
    checks.TemplateRun().run_steps(plan)


@FUZZ
@given(st.binary(max_size=2000))
def test_template_harness_input_format_any_bytes(data: bytes) -> None:
    checks.TemplateRun().run(data)


class TemplateStateMachine(RuleBasedStateMachine):
    """One decoder with small caps across many datagrams: templates, data, junk, clock jumps."""

    @initialize()
    def start(self) -> None:
        self.run = checks.TemplateRun(timing=False)  # (no replay for a long-lived decoder; timed elsewhere)
        self.seqs = seeds.template_sequences()

    @rule(i=st.integers(0, 100), j=st.integers(0, 20), ctrl=u8)
    def valid_datagram(self, i: int, j: int, ctrl: int) -> None:
        seq = self.seqs[i % len(self.seqs)]
        self.run.feed(ctrl & 0x0F, seq[j % len(seq)])

    @rule(plan=template_plan())
    def assembled(self, plan: list[tuple[int, bytes]]) -> None:
        for ctrl, d in plan:
            self.run.feed(ctrl, d)

    @rule(i=st.integers(0, 100), j=st.integers(0, 20), ctrl=u8, rng=st.randoms(use_true_random=False))
    def mutated_datagram(self, i: int, j: int, ctrl: int, rng: random.Random) -> None:
        seq = self.seqs[i % len(self.seqs)]
        self.run.feed(ctrl, structure.mutate(seq[j % len(seq)], rng, rng.randrange(1, 4)))

    @rule(k=st.integers(1, 15))
    def clock_jump(self, k: int) -> None:
        self.run.now += checks.ADVANCE[k]
        self.run.dec.expire(self.run.now)

    @invariant()
    def under_caps(self) -> None:
        if hasattr(self, "run"):
            checks.check_state(self.run.dec)


TemplateStateMachine.TestCase.settings = settings(max_examples=max(20, EXAMPLES // 4), stateful_step_count=40,
                                                  deadline=None, suppress_health_check=list(HealthCheck))
test_template_state_machine = pytest.mark.slow(TemplateStateMachine.TestCase)


# ---- bounded time and memory, worst cases built on purpose ----------------------------------------

def _v9(sets: list[bytes], source_id: int = 7) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), 1000, 1_700_000_000, 1, source_id) + b"".join(sets)


def _set(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def _peak(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


BYTES_PER_BYTE = 400  # a flow tuple per byte of 1-byte records is the worst: ~260 bytes each
MAX_DGRAM = 65507


def test_one_byte_records_memory_and_time_linear_in_size() -> None:
    dec = DatagramDecoder("netflow9", DecoderConfig(), [])
    src = Source("192.0.2.1", 50000)
    dec.decode(_v9([_set(0, struct.pack("!HHHH", 256, 1, 4, 1))]), src)
    for size in (1000, 16000, MAX_DGRAM - 24):
        data = _v9([_set(256, bytes(size))])

        def call(data: bytes = data) -> Decoded:
            return dec.decode(data, src)
        d, el = checks.timed(call)
        # flows are capped per datagram; what is past the cap is reported, never decoded silently
        assert d is not None and len(d.flows) == min(size, MAX_RECORDS_PER_DATAGRAM)
        assert ("too_many_records" in d.skipped) == (size > MAX_RECORDS_PER_DATAGRAM)
        assert el < checks.budget(len(data))
        assert _peak(call) < 65536 + BYTES_PER_BYTE * len(data)


def test_a_new_template_per_data_set_is_slow_but_linear() -> None:
    """Each set pair compiles a record decoder (~0.25 ms): the costliest bytes there are."""
    sets = []
    for i in range(1024):  # the per-exporter cap
        sets.append(_set(0, struct.pack("!HHHH", 256 + i, 1, 1000 + i, 1)))
        sets.append(_set(256 + i, b"\x01"))
    data = _v9(sets)
    dec = DatagramDecoder("netflow9", DecoderConfig(), [])
    d, el = checks.timed(lambda: dec.decode(data, Source("192.0.2.1", 50000)))
    assert d is not None and len(d.flows) == 1024
    assert el < checks.budget(len(data)), f"{el:.3f} s for {len(data)} bytes"


@pytest.mark.parametrize("version", [9, 10])
def test_mutated_inputs_memory_bounded_by_size(version: int) -> None:
    rng = random.Random(version)
    pool = [d for d in seeds.all_v9_ipfix_datagrams() if d[1] == version]
    for _ in range(60):
        run = checks.TemplateRun(pipeline=False)
        base = rng.choice(pool)
        data = structure.fix_lengths(structure.mutate(base, rng, rng.randrange(1, 4)))
        for d in pool:  # templates learned first
            run.feed(0, d)
        held = run.dec.hold.bytes

        def call(data: bytes = data, run: checks.TemplateRun = run) -> None:
            run.feed(0, data)
        peak = _peak(call)
        assert peak < 65536 + BYTES_PER_BYTE * (len(data) + held), (peak, len(data), held)


def test_sflow_many_tiny_samples_and_records_bounded() -> None:
    hdr = struct.pack(">II4sIIII", 5, 1, bytes(4), 0, 0, 0, 0xFFFFFFFF)
    sample = struct.pack(">II", 1, 32) + struct.pack(">IIIIIIII", 0, 0, 1, 1, 0, 1, 2, 0)
    data = hdr + sample * ((MAX_DGRAM - len(hdr)) // len(sample))
    d = checks.run_sflow(data, pipeline=False)  # times itself against the budget
    assert d is not None and len(d.flows) == (MAX_DGRAM - len(hdr)) // len(sample)
    assert _peak(lambda: checks.run_sflow(data, pipeline=False)) < 65536 + BYTES_PER_BYTE * len(data)
    recs = struct.pack(">II", 1000, 0) * 8000
    body = struct.pack(">IIIIIIII", 0, 0, 1, 1, 0, 1, 2, 0xFFFFFFFF) + recs
    data = hdr[:-4] + struct.pack(">I", 1) + struct.pack(">II", 1, len(body)) + body
    d = checks.run_sflow(data)
    assert d is not None and len(d.flows) == 1
