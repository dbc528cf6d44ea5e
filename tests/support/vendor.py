"""Vendor export layouts as flowpipe.export templates, with record makers: Cisco ASA NSEL and RFC 5103
biflows / IXIA reverse deltas (the vendor-quirk service tests and the NSEL decoder tests)."""
from __future__ import annotations

import time

# ASA 9.x IPv4 layouts (NSEL templates): flow create, flow update / teardown (the same template),
# flow denied (no connection id, no counters).
ASA_CREATE = [148, 8, 7, (10, 2), 12, 11, (14, 2), 4, 176, 177, 225, 226, 227, 228, 233, 33002, 323, 152,
              33000, 33001, (40000, 20)]
ASA_TEARDOWN = [148, 8, 7, (10, 2), 12, 11, (14, 2), 4, 176, 177, 225, 226, 227, 228, 233, 33002, 323,
                231, 232, 152]
ASA_DENY = [8, 7, (10, 2), 12, 11, (14, 2), 4, 176, 177, 225, 226, 227, 228, 233, 33002, 323, 33000, 33001]
CREATE, TEARDOWN, DENY, UPDATE = 1, 2, 3, 5


def asa(conn: int, src: str, sport: int, dst: str, dport: int, event: int, ext: int = 0,
        counts: tuple[int, int] | None = None, proto: int = 6) -> tuple:
    ms = int(time.time() * 1000)
    head = (conn, src, sport, 3, dst, dport, 2, proto, 0, 0, src, dst, sport, dport, event, ext, ms)
    if counts is None:
        return head + (ms - 5000, bytes(12), bytes(12), "alice")
    return head + counts + (ms - 5000,)


def asa_deny(src: str, sport: int, dst: str, dport: int) -> tuple:
    return (src, sport, 3, dst, dport, 2, 6, 0, 0, src, dst, sport, dport, DENY, 1001, int(time.time() * 1000),
            bytes(12), bytes(12))


BIFLOW = [8, 12, 7, 11, 4, (1, 8), (2, 8), 6, (1, 8, 29305), (2, 8, 29305), (6, 1, 29305), 152, 153]
IXIA = [8, 12, 7, 11, 4, (1, 8), (2, 8), (176, 8, 3054), (177, 8, 3054), 152, 153]


def biflow_records() -> list[tuple]:
    ms = int(time.time() * 1000)
    return [("10.27.0.1", "192.0.2.10", 40000, 443, 6, 1200, 10, 0x1A, 64000, 50, 0x12, ms - 3000, ms),
            ("10.27.0.2", "192.0.2.11", 40001, 53, 17, 80, 1, 0, 0, 0, 0, ms - 3000, ms)]  # no answer


def ixia_records() -> list[tuple]:
    ms = int(time.time() * 1000)
    return [("10.27.1.1", "192.0.2.20", 40000, 80, 6, 360, 4, 9000, 8, ms - 3000, ms)]
