"""The decoder's cheap path for data-only datagrams (``TemplateDecoder.plain``) against its full path.

Every v9 / IPFIX datagram of the real captures and of the project's own exporter fixtures goes
through one columnar decoder: where ``plain`` takes a datagram, what it returns must be what
``decode`` makes of the same datagram (same data sets, same records, same sequence), and it must
take the datagrams a real exporter sends most (data of known templates).
"""
from __future__ import annotations

import struct

import pytest

from flowpipe.config import DecoderConfig
from flowpipe.decode.base import Source
from flowpipe.decode.template_decoder import TemplateDecoder
from tests.support import captures

NAMES = captures.names("nf9_") + captures.names("ipfix_")
OWN = captures.own_names("nf9_") + captures.own_names("ipfix_")


def chunk_view(c: object) -> tuple:
    return (id(c.dec), c.body, c.count, c.exporter, c.namespace, c.rate, dict(c.samplers), c.secs,  # type: ignore[attr-defined]
            c.uptime, c.init)  # type: ignore[attr-defined]


def set_ids(gram: bytes) -> list[int]:
    """The set ids of a v9 / IPFIX datagram, walked here on their own."""
    off = 20 if gram[1] == 9 else 16
    ids = []
    while off + 4 <= len(gram):
        sid, ln = struct.unpack_from("!HH", gram, off)
        if ln < 4:
            break
        ids.append(sid)
        off += ln
    return ids


def compare(name: str) -> tuple[int, int]:
    """(datagrams plain took, data datagrams decode turned into chunks only) over one capture."""
    dec = TemplateDecoder(DecoderConfig(), columnar=True)
    took = chunk_only = 0
    for g in captures.datagrams(name):
        src = Source(g.src, g.sport, "default", g.time)
        got = dec.plain(g.payload, src)
        d = dec.decode(g.payload, src)  # (plain changes nothing: the full path sees the same state)
        if d.chunks and not d.flows and not d.skipped and min(set_ids(g.payload)) >= 256:
            chunk_only += 1
        if got is None:
            continue
        took += 1
        chunks, exporter, flow_type, obs, records = got
        assert (exporter, flow_type) == (d.exporter, d.flow_type)
        assert [chunk_view(c) for c in chunks] == [chunk_view(c) for c in d.chunks]
        assert (d.flows, d.held, d.released, d.skipped) == ([], 0, 0, [])
        assert obs == d.sequence
        assert records == sum(c.count for c in d.chunks)
    return took, chunk_only


@pytest.mark.parametrize("name", OWN)
def test_plain_is_decode_on_own_fixtures(name: str) -> None:
    took, chunk_only = compare(name)
    assert took == chunk_only  # every datagram that was only data of known templates, for the columnar path


def test_plain_takes_most_of_a_real_v9_export() -> None:
    for name in ("nf9_softflowd", "nf9_pmacct_nfprobe"):
        took, _ = compare(name)
        assert took == len(captures.datagrams(name)) - 1  # all but the first, which brings the templates


@pytest.mark.parametrize("name", captures.cases(NAMES))
def test_plain_is_decode_on_vendor_captures(name: str) -> None:
    took, chunk_only = compare(name)
    assert took <= chunk_only


def v9(*sets: bytes, seq: int = 7) -> bytes:
    return struct.pack("!HHIIII", 9, 1, 5000, 1_700_000_000, seq, 3) + b"".join(sets)


def data_set(tid: int, body: bytes) -> bytes:
    return struct.pack("!HH", tid, 4 + len(body)) + body


TEMPLATE = struct.pack("!HH", 0, 16) + struct.pack("!HHHHHH", 256, 2, 8, 4, 12, 4)
RECORD = bytes([10, 0, 0, 1, 10, 0, 0, 2])
SRC = Source("192.0.2.9", 2055, "default", 1.0)


@pytest.mark.parametrize("gram, why", [
    (v9(TEMPLATE), "a template set"),
    (v9(TEMPLATE, data_set(256, RECORD)), "data after a template set"),
    (v9(data_set(257, RECORD)), "data of an unknown template"),
    (v9(data_set(256, RECORD))[:-1], "a set that overruns the datagram"),
    (v9(data_set(256, RECORD)) + b"\0\0", "trailing bytes"),
    (v9(data_set(256, RECORD), struct.pack("!HH", 256, 2)), "a set length under 4"),
    (struct.pack("!HHIII", 10, 20, 1, 2, 3) + b"\0" * 8, "an IPFIX length that is not the datagram's"),
])
def test_plain_leaves_every_other_datagram_to_decode(gram: bytes, why: str) -> None:
    dec = TemplateDecoder(DecoderConfig(), columnar=True)
    dec.decode(v9(TEMPLATE, data_set(256, RECORD)), SRC)  # template 256 known and its decoder compiled
    assert dec.plain(v9(data_set(256, RECORD * 3)), SRC) is not None  # (the case it takes)
    assert dec.plain(gram, SRC) is None, why


def test_plain_leaves_expired_templates_and_other_exporters_to_decode() -> None:
    now = [1000.0]
    dec = TemplateDecoder(DecoderConfig(), clock=lambda: now[0], columnar=True)
    dec.decode(v9(TEMPLATE, data_set(256, RECORD)), SRC)
    gram = v9(data_set(256, RECORD * 2), seq=8)
    chunks, exporter, flow_type, obs, records = dec.plain(gram, SRC)  # type: ignore[misc]
    assert (exporter, flow_type, records, [c.count for c in chunks]) == ("192.0.2.9", "netflow9", 2, [2])
    assert (obs.domain, obs.sequence, obs.units) == (3, 8, 1)
    assert dec.plain(gram, Source("192.0.2.10", 2055, "default", 1.0)) is None  # its template is not theirs
    assert dec.plain(gram, Source("192.0.2.9", 2056, "default", 1.0)) is None   # another domain (port)
    now[0] += DecoderConfig().template_timeout + 1
    assert dec.plain(gram, SRC) is None  # expired: decode says what happens to the data (held)
    assert dec.decode(gram, SRC).held == 1


def test_plain_is_off_without_columnar_or_with_in_band_identity() -> None:
    for dec in (TemplateDecoder(DecoderConfig()), TemplateDecoder(DecoderConfig(), columnar=True, in_band=True)):
        dec.decode(v9(TEMPLATE, data_set(256, RECORD)), SRC)
        assert dec.plain(v9(data_set(256, RECORD)), SRC) is None


# ---- sFlow ---------------------------------------------------------------------------------------

SFLOW = captures.own_names("sflow5_") + captures.names("sflow5_")


def sample_formats(gram: bytes) -> list[int]:
    """The sample formats of an sFlow datagram, walked here on their own."""
    off = 28 if gram[7] == 1 else 40
    formats = []
    for _ in range(struct.unpack_from(">I", gram, off - 4)[0]):
        if off + 8 > len(gram):
            break
        fmt, ln = struct.unpack_from(">II", gram, off)
        formats.append(fmt)
        off += 8 + ln
    return formats


def sflow_view(c: object) -> tuple:
    return (c.spans, c.body, c.count, c.exporter, c.namespace, c.rate, c.unrated, c.secs)  # type: ignore[attr-defined]


@pytest.mark.parametrize("udp_identity", [False, True])
@pytest.mark.parametrize("name", SFLOW)
def test_sflow_plain_is_decode(name: str, udp_identity: bool) -> None:
    """Where sflow.plain takes a datagram it gives what decode (columnar) makes of it, and it takes
    every datagram that is only flow samples."""
    from flowpipe.decode import sflow  # noqa: PLC0415

    for g in captures.datagrams(name):
        src = Source(g.src, g.sport, "default", g.time)
        got = sflow.plain(g.payload, src, udp_identity)
        try:
            d = sflow.decode(g.payload, src, udp_identity, columnar=True)
        except Exception:  # noqa: BLE001 - invalid as a whole: plain must not have taken it
            assert got is None
            continue
        only_flows = not d.skipped and set(sample_formats(g.payload)) <= {1, 3}
        assert (got is not None) == only_flows
        if got is not None:
            chunks, exporter, flow_type, obs, n = got
            assert (exporter, flow_type, obs) == (d.exporter, d.flow_type, d.sequence)
            assert [sflow_view(c) for c in chunks] == [sflow_view(c) for c in d.chunks]
            assert n == sum(c.count for c in d.chunks)


def _sflow_gram(agent: int, seq: int, ports: list[int], counters: bool = False, rate: int = 256) -> bytes:
    from flowpipe.export import encode_sflow, flow_sample, packet_header, raw_header_record  # noqa: PLC0415

    mac = bytes.fromhex("020000000001")
    samples = [flow_sample(seq, 3, rate, rate, 0, 1, 2, [raw_header_record(
        packet_header(bytes((10, 0, 0, agent)), bytes((10, 0, 1, 1)), 6, p, 443, 0x10, 0, 100 + p % 50, mac, mac),
        100 + p % 50)]) for p in ports]
    if counters:
        samples.append(struct.pack(">IIIII", 2, 12, 1, 3, 0))  # a counter sample of no records
    return encode_sflow(bytes((192, 0, 2, agent)), 0, seq, 1000, samples)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_a_batch_joins_each_sources_sflow_datagrams_into_chunks_in_arrival_order(
        compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder stage's batch makes one sample chunk per run of an exporter's datagrams in one
    second, not one per datagram, and every exporter's flows come out in the order its datagrams
    arrived: a datagram decoded the full way (counters) or a new second starts a new chunk after it;
    another agent sending from the same source in between does not."""
    from flowpipe.config import ListenerConfig  # noqa: PLC0415
    from flowpipe.decode import sflow  # noqa: PLC0415
    from flowpipe.decode.dispatch import DatagramDecoder  # noqa: PLC0415
    from flowpipe.decode.stage import DecoderStage, FlowQueue  # noqa: PLC0415
    from flowpipe.metrics import Metrics  # noqa: PLC0415

    if not compiled:
        monkeypatch.setattr(sflow, "plain_samples", sflow.py_plain_samples)
    t0 = 1_700_000_000.25
    batch = []  # (datagram, host, port, time)
    for i in range(12):
        batch.append((_sflow_gram(1, i, [1000 + 3 * i, 1001 + 3 * i], counters=i == 5), "192.0.2.9", 6343,
                      t0 if i < 9 else t0 + 1))
        batch.append((_sflow_gram(2, i, [2000 + i], rate=0 if i % 4 == 0 else 512), "192.0.2.10", 6343, t0))
        if i % 3 == 0:  # a second agent behind the first source
            batch.append((_sflow_gram(3, i, [3000 + i]), "192.0.2.9", 6343, t0))
    metrics = Metrics()
    stage = DecoderStage(ListenerConfig(flow_type="sflow5"), metrics, queue=FlowQueue(10**6),
                         decoder=DatagramDecoder("sflow5", DecoderConfig(), [], columnar=True))
    fb = stage.decode_batch(batch)

    want: dict[str, list[tuple]] = {}
    for data, host, port, t in batch:
        for f in sflow.decode(data, Source(host, port, "default", t)).flows:
            want.setdefault(f[1], []).append(f)
    got: dict[str, list[tuple]] = {}
    for c in fb.chunks:
        for f in c.rows():
            got.setdefault(c.exporter, []).append(f)
    assert got == want
    assert fb.size == sum(map(len, want.values())) == 12 * 2 + 12 + 4
    assert len(fb.sequences) == len(batch)  # every datagram's sequence number is still observed
    # agent 1: a run cut by its counters datagram (5: a chunk of its own) and by the new second (9),
    # whatever agent 3 sends from the same source in between; agents 2 and 3: one run each
    assert [c.exporter for c in fb.chunks] == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1", "192.0.2.1",
                                               "192.0.2.1"]
    assert [c.count for c in fb.chunks] == [10, 12, 4, 2, 6, 6]
    assert metrics.flows_unknown_sampling.labels("192.0.2.2")._value.get() == 3  # rate 0: datagrams 0, 4, 8


@pytest.mark.parametrize("udp_identity", [False, True], ids=["agent", "udp"])
def test_an_exporter_sending_from_several_sources_keeps_its_order_and_last_rate(udp_identity: bool) -> None:
    """One exporter reached through several UDP sources (an agent behind two addresses, or one
    address sending from two ports with ``exporter_address = "udp"``): its samples still come out in
    arrival order, a datagram decoded the full way (counters) included, and the rate noted for it
    is its last datagram's."""
    from flowpipe.config import ListenerConfig  # noqa: PLC0415
    from flowpipe.decode import sflow  # noqa: PLC0415
    from flowpipe.decode.dispatch import DatagramDecoder  # noqa: PLC0415
    from flowpipe.decode.facts import SamplingSeen  # noqa: PLC0415
    from flowpipe.decode.stage import DecoderStage, FlowQueue  # noqa: PLC0415
    from flowpipe.metrics import Metrics  # noqa: PLC0415

    lc = ListenerConfig(flow_type="sflow5", exporter_address="udp") if udp_identity else ListenerConfig(
        flow_type="sflow5")
    seen = SamplingSeen(10)
    stage = DecoderStage(lc, Metrics(), queue=FlowQueue(10**6), rates_seen=seen,
                         decoder=DatagramDecoder("sflow5", DecoderConfig(), [], listener=lc, columnar=True))
    t = 1_700_000_000.0
    # udp: one address, two ports (two agents); agent: one agent, two addresses
    sources = [("192.0.2.9", 50001), ("192.0.2.9", 50002)] if udp_identity else [("192.0.2.9", 6343),
                                                                                   ("192.0.2.10", 6343)]
    batch = []
    for i in range(8):
        host, port = sources[i % 3 == 1]
        agent = (1 + (i % 3 == 1)) if udp_identity else 1
        batch.append((_sflow_gram(agent, i, [1000 + i], counters=i == 4, rate=100 * (i + 1)), host, port, t))
    fb = stage.decode_batch(batch)
    exporter = "192.0.2.9" if udp_identity else "192.0.2.1"
    assert {c.exporter for c in fb.chunks} == {exporter}
    assert [f[13] for c in fb.chunks for f in c.rows()] == list(range(1000, 1008))  # source ports, in order
    want = [f for data, host, port, tt in batch
            for f in sflow.decode(data, Source(host, port, "default", tt), udp_identity).flows]
    assert [f for c in fb.chunks for f in c.rows()] == want
    assert seen.rates == {("default", exporter, "sflow5"): 800}
    # one agent through two addresses: a run before its counters datagram and one after; two agents
    # behind one address (one exporter by address): a chunk each time the agent changes
    assert [c.count for c in fb.chunks] == ([1, 1, 2, 1, 2, 1] if udp_identity else [4, 1, 3])
