"""The disk spool: order, size cap, restart recovery, torn-file detection, the directory lock."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowpipe.forward.spool import HEADER, Batch, CorruptFile, Spool
from tests.support.backend import sample_flows


def batch(seq: int, n: int = 10) -> Batch:
    return Batch(seq, sample_flows(seq * 1000, n))


def files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name != "spool.lock")


def test_write_read_in_order(tmp_path: Path) -> None:
    sp = Spool(str(tmp_path), 10**9, fsync=False)
    for seq in (3, 1, 2):  # written out of order (a put-back batch): read back by seq
        assert sp.write(batch(seq)) == []
    assert (len(sp), sp.flows, sp.head_seq, sp.last_seq) == (3, 30, 1, 3)
    assert sp.bytes == sum(os.path.getsize(tmp_path / n) for n in files(tmp_path))
    b = batch(1)
    got = sp.read(1)
    assert (got.seq, got.flows) == (1, b.flows)
    sp.remove(1)
    assert sp.head_seq == 2 and sp.flows == 20
    assert files(tmp_path) == [f"{2:020d}.fps", f"{3:020d}.fps"]
    sp.close()


def test_batch_id_survives(tmp_path: Path) -> None:
    sp = Spool(str(tmp_path), 10**9)
    b = batch(7)
    sp.write(b)
    sp.close()
    sp = Spool(str(tmp_path), 10**9)
    assert sp.read(7).id == b.id
    sp.close()


def test_reopen_recovers_everything(tmp_path: Path) -> None:
    sp = Spool(str(tmp_path), 10**9, fsync=False)
    for seq in range(5):
        sp.write(batch(seq, 3))
    size = sp.bytes
    sp.close()
    sp = Spool(str(tmp_path), 10**9, fsync=False)
    assert (len(sp), sp.flows, sp.bytes, sp.head_seq, sp.last_seq) == (5, 15, size, 0, 4)
    assert sp.corrupt_at_open == []
    assert [sp.read(s).flows for s in range(5)] == [batch(s, 3).flows for s in range(5)]
    sp.close()


def test_max_bytes_drops_oldest_but_not_in_flight(tmp_path: Path) -> None:
    one = Spool(str(tmp_path / "probe"), 10**9, fsync=False)
    one.write(batch(0))
    size = one.bytes
    one.close()
    sp = Spool(str(tmp_path / "s"), 3 * size + size // 2, fsync=False)
    for seq in range(3):
        assert sp.write(batch(seq)) == []
    sp.in_flight = 0
    dropped = sp.write(batch(3))
    assert [e.seq for e in dropped] == [1] and dropped[0].flows == 10
    assert sp.head_seq == 0 and len(sp) == 3
    sp.in_flight = None
    assert [e.seq for e in sp.write(batch(4))] == [0]
    sp.close()


def test_torn_files_are_removed_and_reported(tmp_path: Path) -> None:
    sp = Spool(str(tmp_path), 10**9, fsync=False)
    for seq in range(4):
        sp.write(batch(seq))
    sp.close()
    p = [tmp_path / n for n in files(tmp_path)]
    data = p[1].read_bytes()
    p[1].write_bytes(data[: len(data) // 2])                # torn: shorter than its header says
    p[2].write_bytes(b"garbage")                            # not even a header
    (tmp_path / f"{9:020d}.tmp").write_bytes(data[:100])    # a write that never completed
    (tmp_path / "notes.txt").write_text("not ours")         # left alone
    sp = Spool(str(tmp_path), 10**9, fsync=False)
    assert sorted(sp.corrupt_at_open) == [p[1].name, p[2].name, f"{9:020d}.tmp"]
    assert (len(sp), sp.flows, sp.head_seq, sp.last_seq) == (2, 20, 0, 3)
    assert files(tmp_path) == [p[0].name, p[3].name, "notes.txt"]
    sp.close()


def test_checksum_mismatch_found_on_read(tmp_path: Path) -> None:
    sp = Spool(str(tmp_path), 10**9, fsync=False)
    sp.write(batch(0))
    sp.write(batch(1))
    path = tmp_path / f"{0:020d}.fps"
    data = bytearray(path.read_bytes())
    data[HEADER.size + 5] ^= 0xFF                           # same length, flipped payload byte
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFile) as e:
        sp.read(0)
    assert e.value.entry.flows == 10 and "checksum" in str(e.value)
    assert not path.exists() and sp.head_seq == 1 and sp.flows == 10
    assert sp.read(1).flows == batch(1).flows
    sp.close()


def test_one_process_per_directory(tmp_path: Path) -> None:
    sp = Spool(str(tmp_path), 10**9)
    with pytest.raises(BlockingIOError):
        Spool(str(tmp_path), 10**9)
    sp.close()
    Spool(str(tmp_path), 10**9).close()


def test_json_text_flows_come_back_as_written(tmp_path: Path) -> None:
    """The service spools flows as JSON text (msgpack bins); an older spool holds objects (maps):
    both read back as they were written, in one directory."""
    import orjson  # noqa: PLC0415

    sp = Spool(str(tmp_path), 10**9, fsync=False)
    objects = sample_flows(0, 5)
    texts = [orjson.dumps(f) for f in sample_flows(100, 5)]
    sp.write(Batch(1, objects))
    sp.write(Batch(2, texts))
    sp.close()
    again = Spool(str(tmp_path), 10**9, fsync=False)
    assert again.read(1).flows == objects
    assert again.read(2).flows == texts
    again.close()
