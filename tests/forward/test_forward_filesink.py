"""The JSON-lines file sink and its size-based rotation."""
from __future__ import annotations

import json
from pathlib import Path

from flowpipe.forward.filesink import FileSink
from tests.support.backend import sample_flows, seqs


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_appends_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    line = len(json.dumps(sample_flows(0, 1)[0], separators=(",", ":"))) + 1
    sink = FileSink(str(path), max_bytes=line * 25, backups=2)
    for i in range(0, 100, 10):
        sink.write(sample_flows(i, 10))
    sink.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["flows.jsonl", "flows.jsonl.1", "flows.jsonl.2"]
    # 20 flows a file: the newest in the current file, older ones in .1 and .2, the oldest rotated away
    cur, one, two = read(path), read(tmp_path / "flows.jsonl.1"), read(tmp_path / "flows.jsonl.2")
    assert seqs(two + one + cur) == list(range(40, 100))
    assert all(p.stat().st_size <= line * 25 for p in tmp_path.iterdir())


def test_reopen_appends(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    s = FileSink(str(path), 10**6, 1)
    s.write(sample_flows(0, 2))
    s.close()
    s = FileSink(str(path), 10**6, 1)
    s.write(sample_flows(2, 2))
    s.close()
    assert seqs(read(path)) == [0, 1, 2, 3]


def test_no_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    s = FileSink(str(path), 10, 0)
    s.write(sample_flows(0, 1))
    s.write(sample_flows(1, 1))
    s.close()
    assert seqs(read(path)) == [1] and [p.name for p in tmp_path.iterdir()] == ["f.jsonl"]


def test_a_device_is_never_rotated(tmp_path) -> None:
    """forwarder.file = "/dev/null" (or a FIFO) must never be renamed away by rotation."""
    import os
    import stat
    import threading

    from flowpipe.forward.filesink import FileSink
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    sink = FileSink(str(fifo), max_bytes=10, backups=2)
    for i in range(5):
        sink.write([{"n": i}])
    sink.close()
    reader.join(5)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not (tmp_path / "pipe.1").exists()
    assert got[0].count(b"\n") == 5
