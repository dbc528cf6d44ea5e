"""Template registry, hold queue, snapshot/restore and the state file."""
from __future__ import annotations

import os
import struct

import msgpack
import pytest

from flowpipe.config import DecoderConfig
from flowpipe.decode import state
from flowpipe.decode.base import Source
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.decode.templates import Held, HoldQueue, Registry, TemplateRecord, check

SRC = Source("192.0.2.1", 2055)


def v9(*sets: bytes, source_id: int = 0) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), 1000, 1_700_000_000, 1, source_id) + b"".join(sets)


def fset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def tpl(tid: int, fields: list[tuple[int, int]]) -> bytes:
    return fset(0, struct.pack("!HH", tid, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields))


def rec(tid: int, *fields: tuple[int, int, int], options: bool = False, scope: int = 0) -> TemplateRecord:
    return TemplateRecord(tid, tuple(fields), scope, options)


@pytest.mark.parametrize("r, version, ok", [
    (rec(256, (0, 1, 4)), 9, True),
    (rec(255, (0, 1, 4)), 9, False),
    (rec(256), 10, False),
    (rec(256, (0, 1, 0)), 9, False),
    (rec(256, (0, 1, 0), (0, 2, 4), options=True, scope=1), 9, True),  # zero-length System scope (Cisco)
    (rec(256, (0, 1, 0), options=True, scope=1), 9, False),            # nothing but zero lengths
    (rec(256, (0, 82, 65535)), 9, False),
    (rec(256, (0, 82, 65535)), 10, True),
    (rec(256, *[(0, 1, 1)] * 513), 10, False),
])
def test_check(r: TemplateRecord, version: int, ok: bool) -> None:
    assert (check(r, version) is None) == ok


def test_registry_caps_and_expiry() -> None:
    stats: dict[str, int] = {}
    reg = Registry(DecoderConfig(max_templates_per_exporter=2, max_exporters=1, template_timeout=10), stats)
    dom = reg.domain_for_update("a", (1, 9, 0), 0.0)
    assert dom is not None
    assert [reg.add("a", dom, rec(t, (0, 1, 4)), 0.0) for t in (256, 257, 258)] == [None, None, "template_cap"]
    assert reg.add("a", dom, rec(256, (0, 2, 4)), 5.0) is None  # redefinition is never refused
    assert reg.domain_for_update("b", (1, 9, 0), 0.0) is None
    assert stats["templates"] == 2 and stats["templates_refused_cap"] == 1
    assert stats["templates_refused_exporters"] == 1
    assert reg.expire(12.0) == 1 and stats["templates"] == 1
    assert reg.expire(16.0) == 1 and reg.exporters == {}
    assert reg.domain_for_update("b", (1, 9, 0), 16.0) is not None  # room again


def test_sampling_state_expires_with_its_domain() -> None:
    stats: dict[str, int] = {}
    reg = Registry(DecoderConfig(template_timeout=10), stats)
    dom = reg.domain_for_update("a", (1, 9, 0), 0.0)
    assert dom is not None
    reg.learn(dom, None, 100, None, 0.0)
    reg.learn(dom, 7, 1000, None, 5.0)
    assert (dom.rate, dom.samplers) == (100, {7: 1000})
    reg.expire(14.0)
    assert reg.domain("a", (1, 9, 0)) is dom
    reg.expire(16.0)
    assert reg.domain("a", (1, 9, 0)) is None


def held(exporter: str, size: int, t: float = 0.0, counted: bool = True) -> Held:
    return Held(exporter, (1, 9, 0), "default", 0, 0, [(256, bytes(size))], t, counted)


def test_hold_queue_caps() -> None:
    stats: dict[str, int] = {}
    q = HoldQueue(DecoderConfig(hold_max_per_exporter=3, hold_max_bytes=2000), stats)
    for _ in range(5):
        assert q.add(held("a", 10))
    assert q.held == 3 and q.take_dropped() == 2 and q.take_dropped() == 0
    assert not q.add(held("b", 5000))  # bigger than the whole budget: refused, nothing dropped
    for _ in range(4):
        q.add(held("c", 500))
    assert q.bytes <= 2000 and stats["held_dropped_full"] > 2
    assert stats["held_refused"] == 1


def test_hold_queue_expiry_counts_only_whole_datagrams() -> None:
    stats: dict[str, int] = {}
    q = HoldQueue(DecoderConfig(hold_timeout=10), stats)
    q.add(held("a", 10, t=0.0))
    q.add(held("a", 10, t=0.0, counted=False))
    q.add(held("a", 10, t=5.0))
    assert q.expire(11.0) == 1 and q.held == 1
    assert stats["held_parts_dropped"] == 1 and stats["held_expired"] == 1
    assert q.expire(16.0) == 1 and q.entries == {} and q.by_domain == {} and q.by_exporter == {}
    assert stats["held_bytes"] == 0


def test_snapshot_restore_keeps_templates_and_sampling_rates() -> None:
    dec = TemplateDecoder(DecoderConfig())
    opts = fset(1, struct.pack("!HHH", 257, 4, 8) + struct.pack("!HHHHHH", 1, 4, 48, 2, 34, 4) + b"\0\0")
    dec.decode(v9(opts, fset(257, struct.pack("!IHI", 0, 3, 128) + b"\0\0"), tpl(256, [(48, 2), (1, 4)])), SRC)
    dec.decode(v9(tpl(256, [(2, 4)]), source_id=4), SRC)
    snap = msgpack.unpackb(msgpack.packb(dec.snapshot()), strict_map_key=False)
    fresh = TemplateDecoder(DecoderConfig())
    fresh.restore(snap)
    d = fresh.decode(v9(fset(256, struct.pack("!HI", 3, 99))), SRC)
    assert [(t[3], t[7]) for t in d.flows] == [(128, 99)]
    assert fresh.decode(v9(fset(256, struct.pack("!I", 5)), source_id=4), SRC).flows[0][8] == 5
    assert fresh.stats["templates"] == 3


@pytest.mark.parametrize("junk", [None, 1, "x", {}, {"format": 1}, {"format": 1, "domains": "x"},
                                  {"format": 1, "domains": [[1, 2, 3]]},
                                  {"format": 1, "domains": [["a", 1, 9, 0, [[256, [[0, 1, "x"]], 0, False, 0]],
                                                             [], 0, 0, None, 0]]},
                                  {"format": 1, "domains": [["a", 1, 7, 0, [], [], 0, 0, None, 0]]},
                                  {"format": 2, "domains": []}])
def test_restore_of_malformed_snapshots_never_raises(junk: object) -> None:
    dec = TemplateDecoder(DecoderConfig())
    dec.restore(junk)  # type: ignore[arg-type]
    assert dec.stats["templates"] == 0


def test_restore_respects_caps() -> None:
    big = TemplateDecoder(DecoderConfig())
    big.decode(v9(*[tpl(t, [(1, 4)]) for t in range(256, 300)]), SRC)
    small = TemplateDecoder(DecoderConfig(max_templates_per_exporter=10))
    small.restore(big.snapshot())
    assert small.stats["templates"] == 10


def test_state_file_round_trip_is_atomic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dec = TemplateDecoder(DecoderConfig())
    dec.decode(v9(tpl(256, [(1, 4)])), SRC)
    path = str(tmp_path / "templates.state")
    state.save(path, dec.snapshot())
    state.save(path, dec.snapshot())  # replaces
    assert os.listdir(tmp_path) == ["templates.state"]
    loaded = state.load(path)
    assert loaded is not None
    fresh = TemplateDecoder(DecoderConfig())
    fresh.restore(loaded)
    assert len(fresh.decode(v9(fset(256, bytes(4))), SRC).flows) == 1


def test_state_file_problems_are_reported_not_raised(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "s")
    assert state.read(path)[0] is None and "no saved" in state.read(path)[1]
    state.save(path, {"format": 1, "domains": []})
    whole = open(path, "rb").read()
    cases = {"torn": whole[: len(whole) // 2], "empty": b"", "garbage": os.urandom(64),
             "foreign": msgpack.packb({"a": 1}), "crc": whole[:-1] + bytes([whole[-1] ^ 1])}
    for what, blob in cases.items():
        with open(path, "wb") as f:
            f.write(blob)
        snap, why = state.read(path)
        assert snap is None and why, what
        assert state.load(path) is None
    assert "template state not loaded" in caplog.text
