"""Port rollup: collapse the ephemeral side of a conversation to ``"*"`` (Datadog semantics).

Two generations of trackers keyed by the ordered (src ip, dst ip) pair and one port:
``S(src, dst, sport)`` holds distinct destination ports seen with that source port, and
``D(src, dst, dport)`` distinct source ports seen with that destination port. A side with
``threshold`` or more distinct peer ports is ephemeral. Every ``refresh`` the current generation
is replaced by the new one, so an observation counts for one to two refresh intervals.

Layout (for speed; the semantics are the flat ones above): a generation maps the pair
``(src, dst)`` to one small dict holding that pair's trackers, ``S(sport)`` under the int key
``2*sport`` and ``D(dport)`` under ``2*dport + 1``, each a tuple of distinct ports in the order
seen. One flow costs one tuple lookup per generation and a few int lookups; tuples of ints are
cheap to make and invisible to the cyclic garbage collector. A generation still reads as the
flat mapping ``(src, dst, S|D, port) -> ports`` whose ``len`` is its number of trackers (what
``max_entries`` bounds).

A pair observed once (the common case on real traffic: most conversations are new) is held as a
*seed*, the tuple ``(sport, dport)``, which stands for the two trackers ``S(sport) = (dport,)``
and ``D(dport) = (sport,)``: one small object instead of a dict and two tuples, shared by both
generations. The same observation again changes nothing and leaves the pair's token in the new
generation's seed, ``(sport, dport, token)``; any other one turns the seeds into the pair's dicts
(:func:`_grown`).

Stability tokens (what lets the accumulator skip the rollup for a flow it has seen): an
observation that changes nothing (no tracker created, grown or removed, nothing refused) and keeps
both ports leaves :attr:`PortRollup.stable` set to the pair's current token, else ``None``. The
same observation repeated gives the same result for as long as that pair's trackers do not change
(nothing else is read unless something would change), so the token is invalidated (its ``gen``
set to -1) by any change to the pair in either generation, and every token lapses at
:meth:`PortRollup.rotate` (``gen`` no longer matches).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

S, D = 0, 1
_TOKEN = None  # the key of a pair's token in its new-generation dict


class Token:
    """Valid while ``gen == PortRollup.gen`` (see the module doc)."""

    __slots__ = ("gen",)

    def __init__(self, gen: int) -> None:
        self.gen = gen


class Generation(Mapping[tuple, tuple]):
    """One generation of trackers, readable as ``{(src, dst, S|D, port): (ports...)}``."""

    __slots__ = ("pairs", "entries")

    def __init__(self) -> None:
        self.pairs: dict[tuple[bytes, bytes], dict[Any, Any]] = {}
        self.entries = 0

    def __len__(self) -> int:
        return self.entries

    def __getitem__(self, key: tuple) -> tuple:
        src, dst, kind, port = key
        ports: tuple = _grown(self.pairs[(src, dst)])[port + port + kind]
        return ports

    def __iter__(self) -> Iterator[tuple]:
        for (src, dst), trackers in self.pairs.items():
            for k in _grown(trackers):
                if k is not _TOKEN:
                    yield (src, dst, k & 1, k >> 1)


class PortRollup:
    def __init__(self, threshold: int, max_entries: int = 2_000_000) -> None:
        self.threshold = threshold
        self.max_entries = max_entries
        self.cur = Generation()
        self.new = Generation()
        self.refused = 0  # observations not tracked because the tracker was full
        self.gen = 0      # rotations so far: tokens of older generations are stale
        self.stable: Token | None = None  # set by every observe (see the module doc)
        self.invalidated = 0  # tokens invalidated so far (lets a caller see that some were)

    def rotate(self) -> None:
        self.cur, self.new = self.new, Generation()
        self.gen += 1

    def lone_new_pairs(self, src: Any, dst: Any, n: int, among: Any) -> Any:
        """Which of the flows at positions ``among`` of ``n`` (address columns, numpy ``V4``/``V16``
        or None for absent) have an address pair that no other of the ``n`` has and that has no
        tracker in either generation: what :meth:`track_new` may take (a bool per position of
        ``among``). None when the ``n`` flows could reach ``max_entries`` (then the order of their
        observations matters) or when no pair of ``among`` is untracked."""
        if self.cur.entries + self.new.entries + 4 * n >= self.max_entries:
            return None
        pairs = address_pairs(src, dst, n)
        cur, new = self.cur.pairs, self.new.pairs
        mine = [pairs[p] for p in among.tolist()]
        untracked = np.fromiter([p not in cur and p not in new for p in mine], bool, len(mine))
        if not untracked.any():
            return None
        counts = Counter(pairs)
        return untracked & (np.fromiter(map(counts.__getitem__, mine), np.int64, len(mine)) == 1)

    def seeds_of(self, src: Any, dst: Any, sp: Any, dp: Any, n: int) -> list[Token | None] | None:
        """For each of ``n`` flows (columns as in :meth:`lone_new_pairs`): the pair's stability token
        when both generations hold the pair as the seed of this very flow (then :meth:`observe`
        would change nothing and give verdict 0; the token is made if the seed had none), else
        None. None for all when no pair of them is seeded."""
        pairs = address_pairs(src, dst, n)
        cur, new = self.cur.pairs, self.new.pairs
        seeds = list(map(cur.get, pairs))
        if tuple not in set(map(type, seeds)):
            return None
        sps = [0] * n if sp is None else sp.tolist()
        dps = [0] * n if dp is None else dp.tolist()
        out: list[Token | None] = []
        for pk, c, s, d in zip(pairs, seeds, sps, dps, strict=True):
            g = new.get(pk)
            if type(c) is not tuple or type(g) is not tuple or c[0] != s or c[1] != d or g[0] != s or g[1] != d:
                out.append(None)
                continue
            if len(g) == 2:
                g = new[pk] = (s, d, Token(self.gen))
            out.append(g[2])
        return out

    def track_new(self, src: Any, dst: Any, sp: Any, dp: Any, at: Any) -> None:
        """:meth:`observe` of the flows at positions ``at`` of the columns, whose pairs are lone and
        untracked (:meth:`lone_new_pairs`): each verdict is 0 and no token is made or spent."""
        n = len(at)
        sps = [0] * n if sp is None else sp[at].tolist()
        dps = [0] * n if dp is None else dp[at].tolist()
        pairs = address_pairs(src, dst, n, at)
        seeds = list(zip(sps, dps, strict=True))
        for gen in (self.cur, self.new):
            gen.pairs.update(zip(pairs, seeds, strict=True))  # type: ignore[arg-type]
            gen.entries += 2 * n
        self.stable = None

    def classify(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """0: keep both ports; 1: source port is ephemeral; 2: destination port is ephemeral."""
        trackers = self.cur.pairs.get((src, dst))
        if trackers is None:
            return 0
        if type(trackers) is tuple:
            trackers = _grown(trackers)
        s_ports, d_ports = trackers.get(sp + sp), trackers.get(dp + dp + 1)
        s = len(s_ports) if s_ports else 0
        d = len(d_ports) if d_ports else 0
        if max(s, d) < self.threshold:
            return 0
        return 1 if d > s else 2

    def observe(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """Track one flow's ports and classify it (see :meth:`classify`); sets :attr:`stable`.

        Tracking is an Add on the current generation, Classify on it, then an Add on the new one
        that does not re-track the side the current one classifies as ephemeral (spec §4).
        """
        t = self.threshold
        pk = (src, dst)
        ks, kd = sp + sp, dp + dp + 1
        cur, new = self.cur, self.new
        changed = False

        gc = cur.pairs.get(pk)
        if gc is None and t > 1 and pk not in new.pairs and cur.entries + new.entries + 4 <= self.max_entries:
            # A pair neither generation tracks (the common case): the four trackers this observation
            # makes are one seed in each generation; verdict 0, nothing to invalidate.
            cur.pairs[pk] = new.pairs[pk] = (sp, dp)
            cur.entries += 2
            new.entries += 2
            self.stable = None
            return 0
        if type(gc) is tuple:
            gn = new.pairs.get(pk)
            if type(gn) is tuple and gc[0] == sp and gc[1] == dp and gn[0] == sp and gn[1] == dp:
                # Seeded by this very observation in both generations: seeing it again changes nothing
                # (each tracker already holds its one port), so the pair's token stays in the seed.
                tok = gn[2] if len(gn) == 3 else None
                if tok is None:
                    tok = Token(self.gen)
                    new.pairs[pk] = (sp, dp, tok)
                self.stable = tok
                return 0
            gc = cur.pairs[pk] = _grown(gc)

        # -- Add on the current generation
        if gc is None:
            s_ports = d_ports = None
            a = b = 0
        else:
            s_ports, d_ports = gc.get(ks), gc.get(kd)
            a = len(s_ports) if s_ports else 0
            b = len(d_ports) if d_ports else 0
        if a < t and b < t:
            go = True
            if b + 1 < t:
                if s_ports is None:
                    if cur.entries + new.entries >= self.max_entries:
                        self.refused += 1
                        changed, go = True, False
                    else:
                        if gc is None:
                            gc = cur.pairs[pk] = {}
                        gc[ks] = (dp,)
                        cur.entries += 1
                        changed = True
                elif dp not in s_ports:
                    s_ports = gc[ks] = s_ports + (dp,)  # type: ignore[index]
                    changed = True
                    if len(s_ports) >= t:  # the destination side just became ephemeral
                        for p in s_ports:
                            if gc.pop(p + p + 1, None) is not None:  # type: ignore[union-attr]
                                cur.entries -= 1
            if go and a + 1 < t:
                if d_ports is None:
                    if cur.entries + new.entries >= self.max_entries:
                        self.refused += 1
                        changed = True
                    else:
                        if gc is None:
                            gc = cur.pairs[pk] = {}
                        gc[kd] = (sp,)
                        cur.entries += 1
                        changed = True
                elif sp not in d_ports:
                    d_ports = gc[kd] = d_ports + (sp,)  # type: ignore[index]
                    changed = True
                    if len(d_ports) >= t:  # the source side just became ephemeral
                        for p in d_ports:
                            if gc.pop(p + p, None) is not None:  # type: ignore[union-attr]
                                cur.entries -= 1

        # -- Classify on the current generation
        if changed and gc is not None:
            s_ports, d_ports = gc.get(ks), gc.get(kd)
            a = len(s_ports) if s_ports else 0
            b = len(d_ports) if d_ports else 0
        verdict = 0 if a < t and b < t else (1 if b > a else 2)

        # -- Add on the new generation, not re-tracking a side the current one calls ephemeral
        gn = new.pairs.get(pk)
        if type(gn) is tuple:
            gn = new.pairs[pk] = _grown(gn)
        if gn is None:
            s_ports = d_ports = None
            a = b = 0
        else:
            s_ports, d_ports = gn.get(ks), gn.get(kd)
            a = len(s_ports) if s_ports else 0
            b = len(d_ports) if d_ports else 0
        if a < t and b < t:
            go = True
            if b + 1 < t and verdict != 1:
                if s_ports is None:
                    if cur.entries + new.entries >= self.max_entries:
                        self.refused += 1
                        changed, go = True, False
                    else:
                        if gn is None:
                            gn = new.pairs[pk] = {}
                        gn[ks] = (dp,)
                        new.entries += 1
                        changed = True
                elif dp not in s_ports:
                    s_ports = gn[ks] = s_ports + (dp,)  # type: ignore[index]
                    changed = True
                    if len(s_ports) >= t:
                        for p in s_ports:
                            if gn.pop(p + p + 1, None) is not None:  # type: ignore[union-attr]
                                new.entries -= 1
            if go and a + 1 < t and verdict != 2:
                if d_ports is None:
                    if cur.entries + new.entries >= self.max_entries:
                        self.refused += 1
                        changed = True
                    else:
                        if gn is None:
                            gn = new.pairs[pk] = {}
                        gn[kd] = (sp,)
                        new.entries += 1
                        changed = True
                elif sp not in d_ports:
                    d_ports = gn[kd] = d_ports + (sp,)  # type: ignore[index]
                    changed = True
                    if len(d_ports) >= t:
                        for p in d_ports:
                            if gn.pop(p + p, None) is not None:  # type: ignore[union-attr]
                                new.entries -= 1

        # -- Stability token
        if changed:
            self.stable = None
            if gn is not None:
                tok = gn.pop(_TOKEN, None)
                if tok is not None:
                    tok.gen = -1
                    self.invalidated += 1
        elif verdict or gn is None:
            self.stable = None
        else:
            tok = gn.get(_TOKEN)
            if tok is None:
                tok = gn[_TOKEN] = Token(self.gen)
            self.stable = tok
        return verdict


def address_pairs(src: Any, dst: Any, n: int, at: Any = None) -> list[tuple[bytes, bytes]]:
    """The (source, destination) pairs of ``n`` flows from address columns (numpy ``V4``/``V16``, or
    None: absent, ``b""``), as the bytes flows carry; ``at``: only the flows at these ``n`` positions."""
    def column(col: Any) -> list[bytes]:
        if col is None:
            return [b""] * n
        return (col if at is None else col[at]).tolist()  # type: ignore[no-any-return]

    return list(zip(column(src), column(dst), strict=True))


def _grown(trackers: Any) -> dict[Any, Any]:
    """A pair's trackers as a dict, from a seed ``(sport, dport[, token])`` (see the module doc) or as
    they are."""
    if type(trackers) is tuple:
        if len(trackers) == 3:
            sp, dp, tok = trackers
            return {sp + sp: (dp,), dp + dp + 1: (sp,), _TOKEN: tok}
        sp, dp = trackers
        return {sp + sp: (dp,), dp + dp + 1: (sp,)}
    grown: dict[Any, Any] = trackers
    return grown
