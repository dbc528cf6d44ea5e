"""Port rollup: collapse the ephemeral side of a conversation to ``"*"`` (Datadog semantics).

Two generations of trackers keyed by the ordered (src ip, dst ip) pair and one port:
``S(src, dst, sport)`` holds distinct destination ports seen with that source port, and
``D(src, dst, dport)`` distinct source ports seen with that destination port. A side with
``threshold`` or more distinct peer ports is ephemeral. Every ``refresh`` the current generation
is replaced by the new one, so an observation counts for one to two refresh intervals.

Layout (for speed; the semantics are the flat ones above): a generation maps the pair key
(:func:`pair_key`: the two addresses end to end, one ``bytes``) to one small dict holding that
pair's trackers, ``S(sport)`` under the int key ``2*sport`` and ``D(dport)`` under ``2*dport + 1``,
each a tuple of distinct ports in the order seen. One flow costs one lookup per generation and a
few int lookups; tuples of ints are cheap to make and invisible to the cyclic garbage collector. A
generation still reads as the flat mapping ``(src, dst, S|D, port) -> ports`` whose ``len`` is its
number of trackers (what ``max_entries`` bounds).

A pair observed once (the common case on real traffic: most conversations are new) is held as a
*seed*, the int ``sport << 16 | dport``, which stands for the two trackers ``S(sport) = (dport,)``
and ``D(dport) = (sport,)``: one small object instead of a dict and two tuples, shared by both
generations. The same observation again changes nothing and leaves the pair's token in the new
generation's seed, ``(seed, token)``; any other one turns the seeds into the pair's dicts
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

from flowpipe.flow import DST_PORT, ROLLED_UP, SRC_PORT

S, D = 0, 1
PairKey = bytes | tuple[bytes, bytes]
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
        self.pairs: dict[PairKey, Any] = {}  # pair key -> trackers dict, or a seed (see the module doc)
        self.entries = 0

    def __len__(self) -> int:
        return self.entries

    def __getitem__(self, key: tuple) -> tuple:
        src, dst, kind, port = key
        ports: tuple = _grown(self.pairs[pair_key(src, dst)])[port + port + kind]
        return ports

    def __iter__(self) -> Iterator[tuple]:
        for pk, trackers in self.pairs.items():
            src, dst = pk if type(pk) is tuple else (pk[:len(pk) // 2], pk[len(pk) // 2:])
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

    def lone_new_pairs(self, pairs: list[PairKey], among: Any) -> Any:
        """Which of the flows at positions ``among`` of ``pairs`` (the pair keys of a batch's flows,
        :func:`pair_keys`) have an address pair that no other flow of the batch has and that has no
        tracker in either generation: what :meth:`track_new` may take (a bool per position of
        ``among``). None when the batch could reach ``max_entries`` (then the order of its
        observations matters) or when no pair of ``among`` is untracked."""
        if self.cur.entries + self.new.entries + 4 * len(pairs) >= self.max_entries:
            return None
        cur, new = self.cur.pairs, self.new.pairs
        mine = [pairs[p] for p in among.tolist()]
        untracked = np.fromiter([p not in cur and p not in new for p in mine], bool, len(mine))
        if not untracked.any():
            return None
        counts = Counter(pairs)
        return untracked & (np.fromiter(map(counts.__getitem__, mine), np.int64, len(mine)) == 1)

    def refusals(self, pairs: list[PairKey], among: list[int]) -> list[bool] | None:
        """Which flows at positions ``among`` of ``pairs`` (the pair keys of a batch's flows) have a
        pair that :meth:`observe` refuses at their turn whatever the order of the batch's
        observations: none when the trackers are not full (None returned); else those whose pair
        neither generation tracks, provided no observation of the batch can free an entry. One
        frees entries only when a tracker reaches ``threshold`` ports and its side becomes
        ephemeral, and an observation adds a port at most: so it cannot while each tracked pair of
        the batch, seen k times in it, has no tracker of ``threshold - k`` ports (None when one
        has). A refusal changes nothing but :attr:`refused`, which the caller adds to."""
        if self.cur.entries + self.new.entries < self.max_entries:
            return None
        cur, new = self.cur.pairs, self.new.pairs
        seen = Counter([pk for pk in pairs if pk in cur or pk in new])
        t = self.threshold
        for pk, k in seen.items():
            if _widest(cur.get(pk)) + k >= t or _widest(new.get(pk)) + k >= t:
                return None
        return [pairs[p] not in seen for p in among]

    def track_new(self, pairs: list[PairKey], sp: Any, dp: Any) -> None:
        """:meth:`observe` of flows whose pairs (keys) are lone and untracked (:meth:`lone_new_pairs`),
        ports (columns, None: 0): each verdict is 0 and no token is made or spent."""
        seeds = _seeds(sp, dp, len(pairs))
        for gen in (self.cur, self.new):
            gen.pairs.update(zip(pairs, seeds, strict=True))
            gen.entries += 2 * len(pairs)
        self.stable = None

    def classify(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """0: keep both ports; 1: source port is ephemeral; 2: destination port is ephemeral."""
        trackers = self.cur.pairs.get(pair_key(src, dst))
        if trackers is None:
            return 0
        if type(trackers) is not dict:
            trackers = _grown(trackers)
        s_ports, d_ports = trackers.get(sp + sp), trackers.get(dp + dp + 1)
        return verdict(len(s_ports) if s_ports else 0, len(d_ports) if d_ports else 0, self.threshold)

    def observe(self, src: bytes, dst: bytes, sp: int, dp: int) -> int:
        """Track one flow's ports and classify it (see :meth:`classify`); sets :attr:`stable`.

        Tracking is an Add on the current generation, Classify on it, then an Add on the new one
        that does not re-track the side the current one classifies as ephemeral (spec §4).
        """
        t = self.threshold
        pk = src + dst if len(src) == len(dst) else (src, dst)  # pair_key(), inlined (hot)
        ks, kd = sp + sp, dp + dp + 1
        cur, new = self.cur, self.new

        gc = cur.pairs.get(pk)
        if gc is not None and type(gc) is not dict:  # a seed
            gn = new.pairs.get(pk)
            s = sp << 16 | dp
            if ((gc if type(gc) is int else gc[0]) == s and gn is not None and type(gn) is not dict
                    and (gn if type(gn) is int else gn[0]) == s and 0 <= sp <= 0xFFFF and 0 <= dp <= 0xFFFF):
                # Seeded by this very observation in both generations: seeing it again changes nothing
                # (each tracker already holds its one port), so the pair's token stays in the seed.
                if type(gn) is int:
                    held = Token(self.gen)
                    new.pairs[pk] = (s, held)
                else:
                    held = gn[1]
                self.stable = held
                return 0
            gc = cur.pairs[pk] = _grown(gc)
        elif gc is None and t > 1 and pk not in new.pairs:
            if cur.entries + new.entries >= self.max_entries:
                # A pair neither generation tracks, with the trackers full: its S tracker is refused in
                # each generation (and so its D tracker is not tried); verdict 0, nothing else changes.
                self.refused += 2
                self.stable = None
                return 0
            if 0 <= sp <= 0xFFFF and 0 <= dp <= 0xFFFF and cur.entries + new.entries + 4 <= self.max_entries:
                # The common case: the four trackers this observation makes are one seed in each
                # generation; verdict 0, nothing to invalidate.
                cur.pairs[pk] = new.pairs[pk] = sp << 16 | dp
                cur.entries += 2
                new.entries += 2
                self.stable = None
                return 0

        # -- Add on the current generation, Classify on it
        gc, changed = self._add(cur, pk, gc, sp, dp, True, True)
        if gc is None:
            v = 0
        else:
            s_ports, d_ports = gc.get(ks), gc.get(kd)
            v = verdict(len(s_ports) if s_ports else 0, len(d_ports) if d_ports else 0, t)

        # -- Add on the new generation, not re-tracking a side the current one calls ephemeral
        gn = new.pairs.get(pk)
        if gn is not None and type(gn) is not dict:
            gn = new.pairs[pk] = _grown(gn)
        gn, changed_new = self._add(new, pk, gn, sp, dp, v != 1, v != 2)
        changed = changed or changed_new

        # -- Stability token
        if changed:
            self.stable = None
            if gn is not None:
                tok = gn.pop(_TOKEN, None)
                if tok is not None:
                    tok.gen = -1
                    self.invalidated += 1
        elif v or gn is None:
            self.stable = None
        else:
            tok = gn.get(_TOKEN)
            if tok is None:
                tok = gn[_TOKEN] = Token(self.gen)
            self.stable = tok
        return v

    def _add(self, g: Generation, pk: PairKey, trackers: dict[Any, Any] | None, sp: int, dp: int, s_side: bool,
             d_side: bool) -> tuple[dict[Any, Any] | None, bool]:
        """Add (spec §4) of one flow on generation ``g``, whose trackers of the pair are ``trackers``
        (a dict or None): the S tracker of ``sp`` gets ``dp`` (if ``s_side``) and the D tracker of
        ``dp`` gets ``sp`` (if ``d_side``), unless a side is already ephemeral; a tracker reaching the
        threshold removes the other side's trackers of its ports; a tracker that cannot be made (the
        trackers are full) is refused, and a refused S tracker stops the D one. Returns the pair's
        trackers (made if needed) and whether anything changed (a refusal counts)."""
        t = self.threshold
        ks, kd = sp + sp, dp + dp + 1
        if trackers is None:
            s_ports = d_ports = None
            a = b = 0
        else:
            s_ports, d_ports = trackers.get(ks), trackers.get(kd)
            a = len(s_ports) if s_ports else 0
            b = len(d_ports) if d_ports else 0
        changed = False
        if a >= t or b >= t:
            return trackers, changed
        # (is S, tried, its ports before, its key, the port it gets); S first, with the values read above
        for is_s, tried, ports, key, port in ((True, s_side and b + 1 < t, s_ports, ks, dp),
                                              (False, d_side and a + 1 < t, d_ports, kd, sp)):
            if not tried:
                continue
            if ports is None:
                if self.cur.entries + self.new.entries >= self.max_entries:
                    self.refused += 1
                    if is_s:  # a refused S tracker: the D tracker is not tried
                        return trackers, True
                    changed = True
                    continue
                if trackers is None:
                    trackers = g.pairs[pk] = {}
                trackers[key] = (port,)
                g.entries += 1
                changed = True
            elif port not in ports:
                ports = trackers[key] = ports + (port,)  # type: ignore[index]
                changed = True
                if len(ports) >= t:  # the peer side just became ephemeral: its trackers of these ports go
                    other = 1 if is_s else 0  # S(sport) holds dports: D(p) is key 2p + 1; D(dport): S(p) is 2p
                    for p in ports:
                        if trackers.pop(p + p + other, None) is not None:  # type: ignore[union-attr]
                            g.entries -= 1
        return trackers, changed


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


def pair_key(src: bytes, dst: bytes) -> PairKey:
    """The key of an address pair: the two addresses end to end when they are of one length (the
    usual case: one small object), else the tuple (never equal to a bytes key)."""
    return src + dst if len(src) == len(dst) else (src, dst)


def pair_keys(src: Any, dst: Any, n: int) -> list[PairKey]:
    """:func:`pair_key` of ``n`` flows from address columns (numpy ``V4``/``V16``, or None: absent,
    ``b""``), with numpy when both are of one width."""
    if src is None and dst is None:
        return [b""] * n
    if src is not None and dst is not None and src.dtype.itemsize == dst.dtype.itemsize:
        w = src.dtype.itemsize
        both = np.empty((n, 2 * w), dtype=np.uint8)
        both[:, :w] = np.ascontiguousarray(src).view(np.uint8).reshape(n, w)
        both[:, w:] = np.ascontiguousarray(dst).view(np.uint8).reshape(n, w)
        keys: list[PairKey] = both.view(f"V{2 * w}").ravel().tolist()
        return keys
    return list(map(pair_key, [b""] * n if src is None else src.tolist(), [b""] * n if dst is None else dst.tolist()))


def _seeds(sp: Any, dp: Any, n: int) -> list[int]:
    """The seeds (``sport << 16 | dport``) of port columns (None: 0)."""
    if sp is None and dp is None:
        return [0] * n
    s = np.zeros(n, dtype=np.int64) if sp is None else sp.astype(np.int64) << 16
    if dp is not None:
        s |= dp.astype(np.int64)
    seeds: list[int] = s.tolist()
    return seeds


def _widest(trackers: Any) -> int:
    """The most ports one tracker of a pair holds (its generation's value; None: untracked)."""
    if trackers is None:
        return 0
    if type(trackers) is not dict:  # a seed: one port each
        return 1
    return max((len(v) for k, v in trackers.items() if k is not _TOKEN), default=0)


def _grown(trackers: Any) -> dict[Any, Any]:
    """A pair's trackers as a dict, from a seed (``sport << 16 | dport``, or ``(seed, token)``; see
    the module doc) or as they are."""
    if type(trackers) is dict:
        return trackers
    seed, tok = (trackers, None) if type(trackers) is int else trackers
    sp, dp = seed >> 16, seed & 0xFFFF
    grown = {sp + sp: (dp,), dp + dp + 1: (sp,)}
    if tok is not None:
        grown[_TOKEN] = tok  # type: ignore[index]
    return grown
