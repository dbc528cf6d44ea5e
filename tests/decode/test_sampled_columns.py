"""Templates whose records carry their sampling (a sampler id, a rate) or NTP / delta times take the
columnar path, and read them exactly as the record decoder does.

A record's rate is its own when not 0, else its sampler's (the domain's options records), else the
domain's; a data set keeps the sampler rates of its time, even when an options record changes them
later in the same batch.
"""
from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpipe.decode import columns
from flowpipe.decode.columns import Chunk, Columns
from flowpipe.decode.elements import compile_records
from flowpipe.flow import END, SAMPLING_RATE, START

# v9: addresses, ports, protocol, bytes, packets, then sampler id (48) and/or a rate (34)
BASE = [(0, 8, 4), (0, 12, 4), (0, 7, 2), (0, 11, 2), (0, 4, 1), (0, 1, 4), (0, 2, 4)]
T0 = 1_700_000_000.0
RATED = {
    "sampler": BASE + [(0, 48, 2)],
    "sampler8": BASE + [(0, 48, 8)],
    "rate": BASE + [(0, 34, 4)],
    "both": BASE + [(0, 34, 4), (0, 302, 4)],
}


def _records(fields: list[tuple[int, int, int]], rows: list[tuple[int, int]]) -> bytes:
    fmt = "!4s4sHHBII" + "".join({1: "B", 2: "H", 4: "I", 8: "Q"}[ln] for _, eid, ln in fields[len(BASE):])
    out = b""
    for k, (sid, rate) in enumerate(rows):
        tail = {"sampler": [sid], "sampler8": [sid], "rate": [rate], "both": [rate, sid]}
        kind = next(name for name, f in RATED.items() if f == fields)
        out += struct.pack(fmt, bytes([10, 0, 0, k % 250]), bytes([192, 0, 2, 1]), 40000 + k, 443, 6, 100, 1,
                           *tail[kind])
    return out


@pytest.mark.parametrize("kind", sorted(RATED))
def test_templates_with_their_sampling_in_the_records_have_a_plan(kind: str) -> None:
    dec = compile_records(RATED[kind], 9)
    assert dec.plan is not None and dec.plan.rate is not None


def test_a_rate_from_two_fields_keeps_the_record_decoder() -> None:
    """samplingPacketInterval/Space (305/306) make a ratio: not one field, no plan."""
    assert compile_records(BASE + [(0, 305, 4), (0, 306, 4)], 10).plan is None


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(RATED)), seed=st.integers(0, 2**32),
       domains=st.lists(st.tuples(st.dictionaries(st.integers(0, 6), st.one_of(st.integers(1, 5000), st.sampled_from(
           [2**63, 2**64 - 1])), max_size=4), st.sampled_from([0, 0, 7, 1000, 2**64 - 1])), min_size=1, max_size=4))
def test_sampling_rates_read_as_the_record_decoder_reads_them(kind: str, seed: int,
                                                             domains: list[tuple[dict[int, int], int]]) -> None:
    """Chunks of several domains (each its samplers and default rate, some past 2**63 as an 8-byte
    options field may say), sampler ids known or not, big ids (8-byte field), rates in the record
    or 0: the columns' rates, each chunk's count of records of unknown rate and its last record's
    rate are the record decoder's."""
    rng = random.Random(seed)
    fields = RATED[kind]
    dec = compile_records(fields, 9)
    chunks = []
    for samplers, rate in domains * 2:
        n = rng.randrange(1, 30)
        rows = [(rng.choice([0, 1, 2, 3, 6, 9] + ([2**40 + 1, 2**63 + 3] if kind == "sampler8" else [])),
                 rng.choice([0, 0, 10, 512])) for _ in range(n)]
        chunks.append(Chunk(dec, _records(fields, rows), n, "192.0.2.1", "default", rate, samplers, int(T0), 0, None))
    cols = Columns(chunks)
    kept, _ = cols.kept_at(np.arange(cols.n))
    want = [f[SAMPLING_RATE] for f in cols.rows()]
    assert [k[1] for k in kept] == want
    for c in chunks:
        assert c.unrated == sum(1 for f in c.rows() if not f[SAMPLING_RATE])
        assert c.last_rate() == c.rows()[-1][SAMPLING_RATE]  # (the inventory's announced rate)


def test_a_data_set_keeps_the_sampler_rates_of_its_time() -> None:
    """The domain's samplers are a new dict when an options record changes them: a data set decoded
    later in the accumulator reads the rates it arrived with, as the record decoder did then."""
    from flowpipe.config import DecoderConfig
    from flowpipe.decode.templates import Domain, Registry
    reg = Registry(DecoderConfig())
    dom = Domain(T0)
    reg.learn(dom, 1, 100, None, T0)
    dec = compile_records(RATED["sampler"], 9)
    body = _records(RATED["sampler"], [(1, 0)] * 3)
    before = Chunk(dec, body, 3, "192.0.2.1", "default", dom.rate, dom.samplers, int(T0), 0, None)
    held = dom.samplers
    reg.learn(dom, 1, 250, None, T0)
    reg.learn(dom, 1, 250, None, T0)
    assert dom.samplers is not held and held == {1: 100}
    after = Chunk(dec, body, 3, "192.0.2.1", "default", dom.rate, dom.samplers, int(T0), 0, None)
    kept, _ = Columns([before, after]).kept_at(np.arange(6))
    assert [k[1] for k in kept] == [100] * 3 + [250] * 3
    same = dom.samplers
    reg.learn(dom, 1, 250, None, T0)
    assert dom.samplers is same  # nothing changed: no new dict


@pytest.mark.parametrize("how,eid", [("ntp", 154), ("delta", 158)])
def test_ntp_and_delta_times_read_as_the_record_decoder_reads_them(how: str, eid: int) -> None:
    ln = 8 if how == "ntp" else 4
    fields = BASE + [(0, eid, ln), (0, eid + 1, ln)]
    dec = compile_records(fields, 10)
    assert dec.plan is not None and dec.plan.times[START] == how
    rng = random.Random(3)
    body = b""
    for k in range(50):
        if how == "ntp":
            sec = int(T0) + 2208988800 - rng.randrange(10**5)
            t = [0 if k == 7 else sec << 32 | rng.randrange(2**32), (sec + 9) << 32]
        else:
            t = [rng.randrange(2**32), rng.randrange(10**7)]
        body += struct.pack("!4s4sHHBII" + ("QQ" if ln == 8 else "II"), bytes([10, 0, 0, k]), b"\xc0\x00\x02\x01",
                            k, 80, 17, 1, 1, *t)
    c = Chunk(dec, body, 50, "192.0.2.1", "default", 0, {}, int(T0), 0, None)
    cols = Columns([c])
    assert cols.ok.all()
    rows = c.rows()
    assert cols.start.tolist() == [f[START] for f in rows]
    assert cols.end.tolist() == [f[END] for f in rows]
    assert columns.NTP_EPOCH == 2208988800
