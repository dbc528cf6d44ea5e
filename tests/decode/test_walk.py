"""The datagram walks of the columnar path (flowpipe.decode.walk): what they find, and the compiled
walks (flowpipe/decode/_walk.c) giving exactly the Python ones' results on any bytes."""
from __future__ import annotations

import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpipe.decode import walk
from tests.support import captures

IMPLS = [pytest.param((walk.py_data_sets, walk.py_flow_samples), id="python"),
         pytest.param((walk.data_sets, walk.flow_samples), id="compiled",
                      marks=pytest.mark.skipif(not walk.COMPILED, reason="flowpipe/decode/_walk.c is not built"))]
compiled = pytest.mark.skipif(not walk.COMPILED, reason="flowpipe/decode/_walk.c is not built (no C compiler)")
REAL = captures.names("nf9_") + captures.names("ipfix_") + captures.names("sflow")


def v9(*sets: bytes) -> bytes:
    return struct.pack("!HHIIII", 9, 2, 5000, 1_700_000_000, 42, 7) + b"".join(sets)


def ipfix(*sets: bytes) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), 1_700_000_000, 43, 8) + body


def fset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def sample(fmt: int, body: bytes) -> bytes:
    return struct.pack(">II", fmt, len(body)) + body


def flow_sample(rate: int, expanded: bool = False) -> bytes:
    if expanded:
        return sample(3, struct.pack(">11I", 1, 0, 3, rate, 100, 0, 0, 5, 0, 6, 0))
    return sample(1, struct.pack(">8I", 1, 3, rate, 100, 0, 5, 6, 0))


@pytest.mark.parametrize("impl", IMPLS)
def test_data_sets_finds_the_header_and_every_data_set(impl: tuple) -> None:
    data_sets = impl[0]
    g = v9(fset(256, bytes(8)), fset(300, bytes(12)))
    assert data_sets(g) == (9, 1_700_000_000, 5000, 42, 7, [256, 24, 32, 300, 36, 48])
    g = ipfix(fset(400, bytes(4)))
    assert data_sets(g) == (10, 1_700_000_000, 0, 43, 8, [400, 20, 24])


@pytest.mark.parametrize("gram", [
    v9(fset(0, bytes(12))),                        # a template set
    v9(fset(256, bytes(8)), fset(1, bytes(8))),    # an options template set after data
    v9(),                                          # no set at all
    v9(fset(256, bytes(8)))[:-1],                  # a set past the end
    v9(fset(256, bytes(8))) + b"\0\0",             # trailing bytes
    v9(struct.pack("!HH", 256, 3)),                # a set length under 4
    ipfix(fset(256, bytes(8))) + b"\0" * 4,        # IPFIX length is not the datagram's
    b"\x00\x05" + bytes(30),                       # NetFlow v5
    b"\x01\x09" + bytes(30),                       # not a version at all
])
def test_data_sets_refuses_every_other_datagram(gram: bytes) -> None:
    assert walk.data_sets(gram) is None
    assert walk.py_data_sets(gram) is None


@pytest.mark.parametrize("impl", IMPLS)
def test_flow_samples_spans_rates_and_the_rest_in_order(impl: tuple) -> None:
    flow_samples = impl[1]
    counter = sample(2, bytes(12))
    body = flow_sample(64) + counter + sample(5, bytes(4)) + flow_sample(0, True) + sample(1 | 9 << 12, bytes(4))
    spans, rate, unrated, rest = flow_samples(body, 0, 5)
    first_end = len(flow_sample(64))
    x_start = first_end + len(counter) + len(sample(5, bytes(4))) + 8
    assert array("q", spans).tolist() == [8, first_end, 0, x_start, x_start + 44, 1]
    assert (rate, unrated) == (0, 1)  # the last flow sample's rate (0), one sample without a rate
    assert rest == [(2, first_end + 8, first_end + 8 + 12), "discard_sample", "sample_enterprise"]


@pytest.mark.parametrize("impl", IMPLS)
def test_flow_samples_names_short_truncated_and_unknown_samples(impl: tuple) -> None:
    flow_samples = impl[1]
    body = sample(1, bytes(20)) + sample(7, b"") + flow_sample(10)
    assert flow_samples(body, 0, 3)[3] == ["sample_short", "sample_unknown_format"]
    spans, rate, _, rest = flow_samples(body, 0, 4)  # one more than there are
    assert (len(spans) // 24, rate, rest) == (1, 10, ["sample_short", "sample_unknown_format", "sample_truncated"])
    assert flow_samples(body[:-4], 0, 3)[3] == ["sample_short", "sample_unknown_format", "sample_truncated"]
    assert flow_samples(body, 0, 0) == (b"", 0, 0, None)
    assert flow_samples(body, 0, 2**32 - 1)[3][-1] == "sample_truncated"  # a count that lies ends at the end


@compiled
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([b"\x00\x09", b"\x00\x0a"]))
def test_compiled_data_sets_is_the_python_one(tail: bytes, version: bytes) -> None:
    gram = version + struct.pack("!H", 18 + len(tail)) + bytes(16) + tail
    assert walk.data_sets(gram) == walk.py_data_sets(gram)
    assert walk.data_sets(gram[:19]) == walk.py_data_sets(gram[:19])


@compiled
@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 1 << 12 | 1]), st.binary(max_size=60)), max_size=6),
       st.integers(0, 8), st.integers(0, 6))
def test_compiled_flow_samples_is_the_python_one(parts: list[tuple[int, bytes]], nsamples: int, cut: int) -> None:
    body = b"".join(sample(f, b) for f, b in parts)
    body = body[:len(body) - cut]
    for off in (0, 4):
        assert walk.flow_samples(body, off, nsamples) == walk.py_flow_samples(body, off, nsamples)


@compiled
@pytest.mark.parametrize("name", captures.cases(REAL))
def test_compiled_walks_agree_on_real_captures(name: str) -> None:
    grams = captures.datagrams(name)
    for g in grams:
        d = g.payload
        assert walk.data_sets(d) == walk.py_data_sets(d)
        if d[:4] == b"\0\0\0\5" and len(d) >= 28:
            off = 28 if d[7] == 1 else 40  # after an IPv4 / IPv6 agent address
            count = struct.unpack_from(">I", d, off - 4)[0]
            assert walk.flow_samples(d, off, count) == walk.py_flow_samples(d, off, count)


@pytest.mark.parametrize("impl", IMPLS)
def test_flow_samples_refuses_negative_arguments(impl: tuple) -> None:
    flow_samples = impl[1]
    for off, nsamples in ((-1, 1), (0, -1)):
        with pytest.raises(ValueError):
            flow_samples(flow_sample(5), off, nsamples)


@compiled
def test_read_samples_leaves_spans_outside_the_buffer_unread() -> None:
    """Spans past the buffer (or reversed, or near 2**63) are samples not read (ok 0), never reads outside it."""
    import numpy as np  # noqa: PLC0415

    body = flow_sample(5) + bytes(64)
    big = 2**63 - 1
    start = np.array([8, big - 9, 0, 40, -8], np.int64)
    end = np.array([len(flow_sample(5)), big, 2**40, 8, 8], np.int64)
    out = np.zeros((walk.SAMPLE_COLUMNS, len(start)), np.int64)
    walk.read_samples(np.frombuffer(body, np.uint8), start, end, np.zeros(len(start), np.int64), out)
    assert out[0].tolist()[1:] == [0, 0, 0, 0] and out[0][0] == 5  # rate read only from the real one


VARLEN = 65535
field_lens = st.lists(st.sampled_from([0, 1, 2, 4, 6, VARLEN, VARLEN]), min_size=1, max_size=6).filter(
    lambda lens: VARLEN in lens)


def _varlen_body(draw_bytes: list[bytes], lens: list[int]) -> bytes:
    """Records of ``lens`` from the drawn values (a variable-length one with its length prefix)."""
    out = b""
    vals = iter(draw_bytes)
    for ln in lens:
        v = next(vals, b"")
        if ln == VARLEN:
            out += (bytes([len(v)]) if len(v) < 255 else b"\xff" + len(v).to_bytes(2, "big")) + v
        else:
            out += v[:ln].ljust(ln, b"\x00")
    return out


@settings(max_examples=300, deadline=None)
@given(field_lens, st.lists(st.lists(st.binary(max_size=300), min_size=6, max_size=6), max_size=6),
       st.binary(max_size=6), st.integers(0, 8))
def test_compact_packs_the_fixed_fields_split_varlen_finds(lens: list[int], records: list[list[bytes]],
                                                         tail: bytes, room: int) -> None:
    """Well-formed records then any tail (often a record cut short): the fixed-length fields of the
    records split_varlen reads, packed, the first ``room`` of them; overran as it says; the compiled
    walk and the Python one alike."""
    from flowpipe.decode.elements import split_varlen  # noqa: PLC0415

    body = b"".join(_varlen_body(r, lens) for r in records) + tail
    min_len = sum(ln for ln in lens if ln != VARLEN) + lens.count(VARLEN)
    err: list[bool] = []
    split = list(split_varlen(body, lens, min_len, err))
    want = b"".join(v for rec in split[:room] for v, ln in zip(rec, lens, strict=True) if ln != VARLEN)
    assert walk.py_compact(body, tuple(lens), min_len, room) == (want, min(len(split), room), bool(err))
    if walk.COMPILED:
        assert walk.compact(body, tuple(lens), min_len, room) == (want, min(len(split), room), bool(err))


def sflow_head(version: int, atype: int, nsamples: int, agent: bytes = b"\xc0\x00\x02\x01") -> bytes:
    agent = agent if atype == 1 else agent * 4
    return struct.pack(">II", version, atype) + agent + struct.pack(">IIII", 7, 42, 1000, nsamples)


@compiled
@settings(max_examples=400, deadline=None)
@given(st.sampled_from([4, 5]), st.sampled_from([0, 1, 2, 3]),
       st.lists(st.tuples(st.sampled_from([1, 2, 3, 5, 1 << 12 | 1]), st.binary(max_size=60)), max_size=5),
       st.integers(0, 6), st.integers(0, 50))
def test_compiled_plain_samples_is_the_python_one(version: int, atype: int, parts: list[tuple[int, bytes]],
                                                  nsamples: int, cut: int) -> None:
    """The header and the walk in one compiled step: the same answer as the Python header and walk,
    on whole, cut and foreign datagrams."""
    from flowpipe.decode import sflow  # noqa: PLC0415

    gram = sflow_head(version, atype, nsamples) + b"".join(sample(f, b) for f, b in parts)
    for g in (gram, gram[:max(0, len(gram) - cut)]):
        assert walk.plain_samples(g) == sflow.py_plain_samples(g)


def test_plain_samples_reads_the_header_and_refuses_anything_but_flow_samples() -> None:
    from flowpipe.decode import sflow  # noqa: PLC0415

    for plain_samples in (sflow.plain_samples, sflow.py_plain_samples):
        got = plain_samples(sflow_head(5, 1, 2) + flow_sample(64) + flow_sample(0, expanded=True))
        assert got is not None
        agent, sub_agent, seq, spans, rate, unrated = got
        assert (agent, sub_agent, seq, rate, unrated) == (b"\xc0\x00\x02\x01", 7, 42, 0, 1)
        assert array("q", spans).tolist() == [36, 68, 0, 76, 120, 1]
        v6 = plain_samples(sflow_head(5, 2, 1) + flow_sample(8))
        assert v6 is not None and v6[0] == b"\xc0\x00\x02\x01" * 4 and v6[4] == 8
        assert plain_samples(sflow_head(5, 1, 2) + flow_sample(64) + sample(2, bytes(12))) is None  # counters
        assert plain_samples(sflow_head(5, 1, 2) + flow_sample(64)) is None  # a sample missing: truncated
        assert plain_samples(sflow_head(4, 1, 1) + flow_sample(64)) is None  # version 4
        assert plain_samples(sflow_head(5, 3, 1) + flow_sample(64)) is None  # no such address type
        assert plain_samples(sflow_head(5, 1, 0)[:20]) is None  # a cut header
        assert plain_samples(sflow_head(5, 1, 0)) == (b"\xc0\x00\x02\x01", 7, 42, b"", 0, 0)


COLUMN_IMPLS = [pytest.param(walk.py_column_tuples, id="python"),
                pytest.param(walk.column_tuples, id="compiled", marks=compiled)]


@pytest.mark.parametrize("column_tuples", COLUMN_IMPLS)
def test_column_tuples_makes_rows_of_lists_constants_and_integers(column_tuples: object) -> None:
    import numpy as np  # noqa: PLC0415

    ints = np.array([5, 5, -3, 1 << 40, 1 << 40], dtype=np.int64)
    big = np.array([(1 << 64) - 1] * 5, dtype=np.uint64)
    hops = [b"a", b"b", b"", b"a", b"c"]
    rows = column_tuples((("sflow5",), ints, hops, big, (None,)), 5)  # type: ignore[operator]
    assert rows == [("sflow5", 5, b"a", (1 << 64) - 1, None), ("sflow5", 5, b"b", (1 << 64) - 1, None),
                    ("sflow5", -3, b"", (1 << 64) - 1, None), ("sflow5", 1 << 40, b"a", (1 << 64) - 1, None),
                    ("sflow5", 1 << 40, b"c", (1 << 64) - 1, None)]
    # equal neighbours are one int (a million contexts keep these tuples), constants one object
    assert rows[3][1] is rows[4][1] and rows[0][3] is rows[4][3] and rows[0][0] is rows[4][0]
    assert column_tuples((), 2) == [(), ()]  # type: ignore[operator]
    assert column_tuples((ints[:0],), 0) == []  # type: ignore[operator]


@pytest.mark.parametrize("column_tuples", COLUMN_IMPLS)
def test_column_tuples_refuses_columns_of_another_length_or_type(column_tuples: object) -> None:
    import numpy as np  # noqa: PLC0415

    for bad in ([1], np.zeros(3, np.int64), np.zeros(2, np.int32), np.zeros(2, np.float64), b"x" * 16,
                np.zeros((2, 1), np.int64)):
        with pytest.raises(ValueError, match="column"):
            column_tuples((bad,), 2)  # type: ignore[operator]
    with pytest.raises(ValueError, match="column"):  # (n * 8 past 64 bits is no match for an empty one)
        column_tuples((np.zeros(0, np.int64),), 1 << 61)  # type: ignore[operator]
    with pytest.raises(ValueError):
        column_tuples(([1],), -1)  # type: ignore[operator]


@compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=30), st.booleans())
def test_compiled_column_tuples_is_the_python_one(values: list[int], unsigned: bool) -> None:
    import numpy as np  # noqa: PLC0415

    col = np.array(values, dtype=np.int64)
    if unsigned:
        col = col.view(np.uint64)
    n = len(values)
    cols = (col, list(range(n)), ("k",), np.ascontiguousarray(col[::-1]))
    assert walk.column_tuples(cols, n) == walk.py_column_tuples(cols, n)
