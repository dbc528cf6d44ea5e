"""Cisco ASA NSEL connection state in the decoder: bounded per exporter and in all, every
forgotten connection counted, one exporter never evicting another's state."""
from __future__ import annotations

from flowpipe.config import DecoderConfig
from flowpipe.decode.base import Source
from flowpipe.decode.nsel import IDLE_SECONDS
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.export import Netflow9Encoder, Template
from flowpipe.flow import Flow
from tests.support.vendor import ASA_TEARDOWN, TEARDOWN, UPDATE, asa

T = Template(ASA_TEARDOWN, 257)
CONN = ("10.26.0.1", 50000, "192.0.2.1", 443)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def send(dec: TemplateDecoder, exporter: str, *records: tuple) -> list[int]:
    """Decode a template packet and a data packet of ``records`` from ``exporter``; the flows' bytes."""
    enc = Netflow9Encoder(1)
    dec.decode(enc.template_packet([T], 1000, 1_700_000_000), Source(exporter))
    d = dec.decode(enc.data_packet(T, list(records), 1000, 1_700_000_000), Source(exporter))
    return [Flow._make(f).bytes for f in d.flows]


def test_an_evicted_connection_is_counted_and_only_the_exporters_own_state_goes() -> None:
    dec = TemplateDecoder(DecoderConfig(nsel_max_connections_per_exporter=2), clock=Clock())
    assert send(dec, "a", *(asa(c, *CONN, UPDATE, counts=(100, 0)) for c in (1, 2, 3))) == [100, 100, 100]
    assert dec.nsel.stats.evicted == 1 and dec.nsel.stats.connections == 2
    # connection 1 was forgotten: its teardown counts its totals again (what the counter warns of);
    # connection 3 is still known: only what its update did not count
    assert send(dec, "a", asa(1, *CONN, TEARDOWN, counts=(150, 0)), asa(3, *CONN, TEARDOWN, counts=(150, 0))) == \
        [150, 50]


def test_the_total_cap_never_takes_another_exporters_state() -> None:
    dec = TemplateDecoder(DecoderConfig(nsel_max_connections=2), clock=Clock())
    send(dec, "a", asa(1, *CONN, UPDATE, counts=(100, 0)), asa(2, *CONN, UPDATE, counts=(100, 0)))
    assert send(dec, "b", asa(1, *CONN, UPDATE, counts=(10, 0))) == [10]
    assert dec.nsel.stats.untracked == 1 and dec.nsel.stats.evicted == 0
    assert send(dec, "a", asa(1, *CONN, TEARDOWN, counts=(100, 0))) == []  # still counted once
    assert send(dec, "b", asa(1, *CONN, TEARDOWN, counts=(30, 0))) == [30]


def test_idle_connections_expire_and_are_counted() -> None:
    clock = Clock()
    dec = TemplateDecoder(DecoderConfig(template_timeout=10 * IDLE_SECONDS), clock=clock)
    send(dec, "a", asa(1, *CONN, UPDATE, counts=(100, 5)))
    clock.now += IDLE_SECONDS + 1
    dec.expire(clock.now)
    assert dec.nsel.stats.expired == 1 and dec.nsel.stats.connections == 0


def test_initiator_plus_responder_past_64_bits_is_held_at_the_largest_count() -> None:
    wide = Template([148, 8, 12, 233, (231, 8), (232, 8)], 258)
    enc, dec = Netflow9Encoder(1), TemplateDecoder(DecoderConfig(), clock=Clock())
    dec.decode(enc.template_packet([wide], 1000, 1_700_000_000), Source("a"))
    d = dec.decode(enc.data_packet(wide, [(9, "10.26.1.1", "10.26.1.2", 2, 2**63, 2**63 + 5)], 1000, 1_700_000_000),
                   Source("a"))
    assert [Flow._make(f).bytes for f in d.flows] == [2**64 - 1]


def test_sequence_units_count_records_not_the_flows_vendor_rules_make() -> None:
    """IPFIX sequence numbers count data records: a biflow record split in two (reverse_flows) or an
    NSEL create that makes no flow is still one record, or loss would be misreported."""
    from flowpipe.export import IpfixEncoder
    from tests.support.vendor import BIFLOW, CREATE, biflow_records

    dec = TemplateDecoder(DecoderConfig(), reverse=True)
    bi, create = Template(BIFLOW, 300), Template([148, 8, 7, 12, 11, 233], 301)
    enc = IpfixEncoder(1)
    dec.decode(enc.template_message([bi, create], 1_700_000_000), Source("a"))
    d = dec.decode(enc.data_message(bi, biflow_records(), 1_700_000_000), Source("a"))
    assert (len(d.flows), d.sequence.units if d.sequence else None) == (3, 2)
    d = dec.decode(enc.data_message(create, [(1, "10.26.2.1", 1, "10.26.2.2", 2, CREATE)], 1_700_000_000),
                   Source("a"))
    assert (len(d.flows), d.sequence.units if d.sequence else None) == (0, 1)
