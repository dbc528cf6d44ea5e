"""Port rollup: collapse the ephemeral side of a conversation to ``"*"`` (Datadog semantics).

Two generations of trackers keyed by the (src ip, dst ip) pair and one port: ``S(src, dst, sport)``
holds the distinct destination ports seen with that source port, ``D(src, dst, dport)`` the distinct
source ports seen with that destination port. A side with ``threshold`` or more distinct peer ports
is ephemeral. Every ``refresh`` the current generation is replaced by the new one, so an observation
counts for one to two refresh intervals. Both generations together hold at most ``max_entries``
trackers; a tracker that cannot be made is refused (counted), and a refused S tracker ends the
flow's Add.

:data:`Trackers` is the implementation the service uses: the compiled one
(``flowpipe/aggregate/_tables.c``: every flow of a batch observed in one C loop, a conversation
seen once held in ~60 bytes) when it is built, else :class:`PyTrackers`, the spec's algorithm as
plainly as Python states it, which is also the reference the tests hold the compiled one to.
"""
from __future__ import annotations

from typing import Any

from flowpipe.flow import DST_PORT, ROLLED_UP, SRC_PORT

S, D = 0, 1


class PyTrackers:
    """The rollup's trackers: one flat dict per generation, ``{(src, dst, S|D, port): [ports]}``.

    The same interface as the compiled ``Trackers``: :meth:`observe` one flow, :meth:`observe_columns`
    many, :meth:`rotate`, :meth:`entries`, :meth:`trackers`, :attr:`refused`."""

    def __init__(self, threshold: int, max_entries: int = 2_000_000) -> None:
        self.threshold = threshold
        self.max_entries = max_entries
        self.cur: dict[tuple, list[int]] = {}
        self.new: dict[tuple, list[int]] = {}
        self.refused = 0  # trackers not made because the tables were full

    def rotate(self) -> None:
        """The new generation becomes the current one."""
        self.cur, self.new = self.new, {}

    def entries(self, gen: int) -> int:
        """Trackers held by the current (0) or new (1) generation."""
        return len(self.cur if gen == 0 else self.new)

    def trackers(self, gen: int) -> dict[tuple, tuple[int, ...]]:
        """The current (0) or new (1) generation as ``{(src, dst, S|D, port): (ports in the order seen)}``."""
        return {k: tuple(v) for k, v in (self.cur if gen == 0 else self.new).items()}

    def _add(self, store: dict[tuple, list[int]], src: bytes, dst: bytes, sp: int, dp: int,
             src_ephemeral: bool, dst_ephemeral: bool) -> None:
        t = self.threshold
        ks, kd = (src, dst, S, sp), (src, dst, D, dp)
        s_list, d_list = store.get(ks), store.get(kd)
        a = len(s_list) if s_list else 0
        b = len(d_list) if d_list else 0
        if a >= t or b >= t:
            return
        # S(sport) gets dport unless the source side is ephemeral, then D(dport) gets sport
        for tried, key, ports, port, peer in ((b + 1 < t and not src_ephemeral, ks, s_list, dp, D),
                                              (a + 1 < t and not dst_ephemeral, kd, d_list, sp, S)):
            if not tried:
                continue
            if ports is None:
                if len(self.cur) + len(self.new) >= self.max_entries:
                    self.refused += 1
                    return
                ports = store[key] = []
            if port not in ports:
                ports.append(port)
            if len(ports) >= t:
                for p in ports:
                    store.pop((src, dst, peer, p), None)

    def classify(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """0: keep both ports; 1: the source port is ephemeral; 2: the destination port is (from the
        current generation; tracks nothing)."""
        s_list = self.cur.get((src, dst, S, sp))
        d_list = self.cur.get((src, dst, D, dp))
        return verdict(len(s_list) if s_list else 0, len(d_list) if d_list else 0, self.threshold)

    def observe(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """Track one flow's ports (Add on the current generation, then on the new one without the side
        the current one calls ephemeral) and classify it (:meth:`classify`)."""
        self._add(self.cur, src, dst, sp, dp, False, False)
        v = self.classify(src, dst, sp, dp)
        self._add(self.new, src, dst, sp, dp, v == 1, v == 2)
        return v

    def observe_columns(self, src: Any, dst: Any, sp: Any, dp: Any, n: int) -> bytes:
        """:meth:`observe` of ``n`` flows in order, from address buffers (``n`` addresses of one width
        end to end; None: absent) and uint64 port arrays (None: 0); their verdicts, a byte each."""
        ws = len(src) // n if src is not None and n else 0
        wd = len(dst) // n if dst is not None and n else 0
        s, d = bytes(src) if ws else b"", bytes(dst) if wd else b""
        sps = [0] * n if sp is None else sp.tolist()
        dps = [0] * n if dp is None else dp.tolist()
        observe = self.observe
        return bytes(observe(s[i * ws:(i + 1) * ws], d[i * wd:(i + 1) * wd], sps[i], dps[i]) for i in range(n))


try:
    from flowpipe.aggregate._tables import Trackers  # type: ignore[import-not-found]
except ImportError:  # not built (no C compiler where it was installed): the same results, in Python
    Trackers = PyTrackers
COMPILED = Trackers is not PyTrackers  # which implementation runs (the tests read it)


def verdict(s: int, d: int, threshold: int) -> int:
    """The classification of a flow whose S tracker holds ``s`` ports and D tracker ``d``: 0 keep both
    ports, 1 the source port is ephemeral, 2 the destination port is (spec §4)."""
    if s < threshold and d < threshold:
        return 0
    return 1 if d > s else 2


def roll_up(f: tuple, v: int) -> tuple:
    """Flow tuple ``f`` with the port its verdict ``v`` (1 source, 2 destination) calls ephemeral
    replaced by ``ROLLED_UP``."""
    lf = list(f)
    lf[SRC_PORT if v == 1 else DST_PORT] = ROLLED_UP
    return tuple(lf)
