"""NetFlow v9 datagrams built field by field with struct (the v9 decoder tests and the agent-parity
service tests)."""
from __future__ import annotations

import struct

SECS, UPTIME = 1_700_000_000, 10_000_000


def v9(*sets: bytes, uptime: int = UPTIME, secs: int = SECS, seq: int = 7, source_id: int = 0) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets), uptime, secs, seq, source_id) + b"".join(sets)


def fset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def tpl(tid: int, fields: list[tuple[int, int]]) -> bytes:
    return fset(0, struct.pack("!HH", tid, len(fields)) + b"".join(struct.pack("!HH", t, ln) for t, ln in fields))


def opt_tpl(tid: int, scope: list[tuple[int, int]], fields: list[tuple[int, int]]) -> bytes:
    body = struct.pack("!HHH", tid, 4 * len(scope), 4 * len(fields))
    body += b"".join(struct.pack("!HH", t, ln) for t, ln in scope + fields)
    return fset(1, body + b"\x00\x00")  # padded to 4 bytes


def ip4(s: str) -> bytes:
    return bytes(int(x) for x in s.split("."))
