"""Port rollup: collapse the ephemeral side of a conversation to ``"*"`` (Datadog semantics).

Two generations of trackers keyed by the ordered (src ip, dst ip) pair and one port:
``S(src, dst, sport)`` holds distinct destination ports seen with that source port, and
``D(src, dst, dport)`` distinct source ports seen with that destination port. A side with
``threshold`` or more distinct peer ports is ephemeral. Every ``refresh`` the current generation
is replaced by the new one, so an observation counts for one to two refresh intervals.
"""
from __future__ import annotations

S, D = 0, 1


class PortRollup:
    def __init__(self, threshold: int, max_entries: int = 2_000_000) -> None:
        self.threshold = threshold
        self.max_entries = max_entries
        self.cur: dict[tuple, list[int]] = {}
        self.new: dict[tuple, list[int]] = {}
        self.refused = 0  # observations not tracked because the tracker was full

    def rotate(self) -> None:
        self.cur, self.new = self.new, {}

    def _add(self, store: dict[tuple, list[int]], src: bytes, dst: bytes, sp: int, dp: int,
             src_ephemeral: bool, dst_ephemeral: bool) -> None:
        t = self.threshold
        ks, kd = (src, dst, S, sp), (src, dst, D, dp)
        s_list, d_list = store.get(ks), store.get(kd)
        a = len(s_list) if s_list else 0
        b = len(d_list) if d_list else 0
        if a >= t or b >= t:
            return
        if b + 1 < t and not src_ephemeral:
            if s_list is None:
                if len(self.cur) + len(self.new) >= self.max_entries:
                    self.refused += 1
                    return
                s_list = store[ks] = []
            if dp not in s_list:
                s_list.append(dp)
            if len(s_list) >= t:
                for p in s_list:
                    store.pop((src, dst, D, p), None)
        if a + 1 < t and not dst_ephemeral:
            if d_list is None:
                if len(self.cur) + len(self.new) >= self.max_entries:
                    self.refused += 1
                    return
                d_list = store[kd] = []
            if sp not in d_list:
                d_list.append(sp)
            if len(d_list) >= t:
                for p in d_list:
                    store.pop((src, dst, S, p), None)

    def classify(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """0: keep both ports; 1: source port is ephemeral; 2: destination port is ephemeral."""
        s_list = self.cur.get((src, dst, S, sp))
        d_list = self.cur.get((src, dst, D, dp))
        s = len(s_list) if s_list else 0
        d = len(d_list) if d_list else 0
        if max(s, d) < self.threshold:
            return 0
        return 1 if d > s else 2

    def observe(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """Track one flow's ports and classify it (see :meth:`classify`)."""
        self._add(self.cur, src, dst, sp, dp, False, False)
        verdict = self.classify(src, dst, sp, dp)
        self._add(self.new, src, dst, sp, dp, verdict == 1, verdict == 2)
        return verdict
