"""Additional fields may be one dict shared by many records and windows (the sFlow columns share
equal ones): aggregating never changes a dict it was given, and each window still gets its own."""
from __future__ import annotations

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.config import AggregatorConfig
from flowpipe.decode.rows import rows
from flowpipe.flow import EXTRAS, SRC_PORT, make_flow

A, B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"


def test_a_shared_dict_is_never_changed_and_each_window_gets_what_it_saw() -> None:
    shared = {"src_as": 64500, "dst_as": 64501}
    more = {"egress_format": "single", "src_as": 1}
    acc = Accumulator(AggregatorConfig(port_rollup_disabled=True))
    first = [make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=p, dst_port=443, bytes=1, packets=1, extras=shared)
             for p in (1000, 1001)]
    acc.add(rows(first), 0)
    acc.add(rows([make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=1000, dst_port=443, bytes=1, packets=1,
                       extras=more)]), 0)
    out = {f[SRC_PORT]: f[EXTRAS] for f in acc.drain()}
    assert shared == {"src_as": 64500, "dst_as": 64501} and more == {"egress_format": "single", "src_as": 1}
    assert out[1000] == {"src_as": 64500, "dst_as": 64501, "egress_format": "single"}  # first value kept
    assert list(out[1000]) == ["src_as", "dst_as", "egress_format"]  # the window's fields first (payload order)
    assert out[1001] == {"src_as": 64500, "dst_as": 64501}


def test_keys_of_values_past_the_packed_layout_read_back_and_match_equal_values() -> None:
    """A flow whose key values do not fit the packed key (a port past 16 bits, a tos past 8 bits) is
    keyed by its values' text: integers of another type (numpy, bool) key the same context as the
    equal int, and the flush reads the values back."""
    import numpy as np  # noqa: PLC0415

    acc = Accumulator(AggregatorConfig(port_rollup_disabled=True))
    acc.add(rows([make_flow(exporter="x", src_ip=A, dst_ip=B, dst_port=np.int64(70000), tos=512, in_if=True, bytes=1),
             make_flow(exporter="x", src_ip=A, dst_ip=B, dst_port=70000, tos=512, in_if=1, bytes=2)]), 0)
    (f,) = acc.drain()
    assert (f[14], f[23], f[19], f[7]) == (70000, 512, 1, 3)
