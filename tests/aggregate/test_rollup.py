"""Port rollup: ephemeral sides collapse to "*" exactly as the Datadog Agent does."""
from __future__ import annotations

from typing import Any

import pytest

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceRollup
from flowpipe.aggregate.rollup import COMPILED, PyTrackers, Trackers
from flowpipe.config import AggregatorConfig
from flowpipe.decode.rows import rows
from flowpipe.flow import ROLLED_UP, Flow, make_flow

CLIENT, SERVER = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"


@pytest.fixture(params=["compiled", "python"])
def PortRollup(request: pytest.FixtureRequest) -> Any:  # noqa: N802 - a class, as the tests call it
    """Each test on the compiled trackers and on the pure-Python ones."""
    if request.param == "compiled" and not COMPILED:
        pytest.skip("the compiled trackers are not built (no C compiler at install)")
    return Trackers if request.param == "compiled" else PyTrackers


def test_tenth_distinct_source_port_is_rolled_up_and_stays_so(PortRollup: Any) -> None:
    r = PortRollup(10)
    verdicts = [r.observe(CLIENT, SERVER, 40000 + i, 443) for i in range(12)]
    assert verdicts[:9] == [0] * 9
    assert verdicts[9:] == [1, 1, 1]          # the flow bringing the 10th port is already "*"
    assert r.observe(CLIENT, SERVER, 40000, 443) == 1  # ports seen earlier too


def test_scan_rolls_up_the_destination_port(PortRollup: Any) -> None:
    r = PortRollup(10)
    assert [r.observe(CLIENT, SERVER, 5555, p) for p in range(1, 12)][-1] == 2


def test_direction_matters_and_other_pairs_are_untouched(PortRollup: Any) -> None:
    r = PortRollup(3)
    for i in range(5):
        r.observe(CLIENT, SERVER, 50000 + i, 53)
    assert r.observe(SERVER, CLIENT, 53, 50000) == 0
    assert r.observe(CLIENT, b"\x0a\x00\x00\x09", 50000, 53) == 0


def test_rotation_forgets_after_two_generations(PortRollup: Any) -> None:
    r = PortRollup(3)
    for i in range(4):
        r.observe(CLIENT, SERVER, 50000 + i, 53)
    assert r.observe(CLIENT, SERVER, 50009, 53) == 1
    r.rotate()
    assert r.classify(CLIENT, SERVER, 50010, 53) == 1  # the new generation kept tracking
    r.rotate()
    r.rotate()
    assert r.classify(CLIENT, SERVER, 50010, 53) == 0


def test_threshold_one_disables_rollup_like_the_agent(PortRollup: Any) -> None:
    r = PortRollup(1)
    assert {r.observe(CLIENT, SERVER, 40000 + i, 443) for i in range(20)} == {0}


def test_busy_dns_resolver_ends_up_as_a_handful_of_contexts() -> None:
    a = Accumulator(AggregatorConfig(flush_interval=60))
    flows = [make_flow(exporter="192.0.2.1", src_ip=CLIENT, dst_ip=SERVER, src_port=1024 + i, dst_port=53,
                       ip_protocol=17, bytes=80, packets=1) for i in range(5000)]
    a.add(rows(flows), now=0)
    out = [Flow._make(f) for f in a.flush(1)]
    assert len(out) == 10                     # 9 real source ports, then one "*" context
    star = [f for f in out if f.src_port == ROLLED_UP]
    assert len(star) == 1 and star[0].packets == 5000 - 9
    assert sum(f.bytes for f in out) == 5000 * 80


def test_memory_cap_stops_tracking_new_pairs(PortRollup: Any) -> None:
    r = PortRollup(10, max_entries=4)
    for i in range(10):
        r.observe(bytes([10, 0, 0, i]), SERVER, 1000, 80)
    assert r.entries(0) + r.entries(1) <= 4
    assert r.refused > 0


def test_ports_past_16_bits_never_pass_for_a_seeded_conversation(PortRollup: Any) -> None:
    """A pair seen once is held as its two 16-bit ports; a flow whose port does not fit 16 bits (a
    v9 template may carry 4-byte ports) must not match it by accident: (1, 65536) is not (1, 0)."""
    new, ref = PortRollup(2), ReferenceRollup(2)
    for sp, dp in ((1, 0), (1, 65536), (1, 0), (70000, 5), (70000, 5), (4, 70000 - 65536)):
        assert new.observe(CLIENT, SERVER, sp, dp) == ref.observe(CLIENT, SERVER, sp, dp)
        assert new.trackers(0) == ref.trackers(0) and new.trackers(1) == ref.trackers(1)
    assert new.classify(CLIENT, SERVER, 1, 0) == ref.classify(CLIENT, SERVER, 1, 0) == 2
