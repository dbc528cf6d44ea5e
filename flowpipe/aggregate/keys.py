"""Flow context keys as compact bytes, made from flow tuples or from numpy columns alike.

A context is keyed by (namespace, exporter, src ip, dst ip, src port, dst port, protocol, tos,
input interface). The accumulator holds that key as one ``bytes`` object, the same whichever way
the flow came in (a decoded tuple or a columnar chunk), so one dict lookup finds the context:

    owner id (4) | len(src) (1) | len(dst) (1) | src | dst | src port (2) | dst port (2)
    | protocol (1) | tos (1) | input interface (4) | rolled-up side (1: 0, 1 src, 2 dst)

big-endian, the integers in the key's order with the widths of :data:`flowpipe.flow.SCHEMA`;
25 bytes for IPv4 (half the memory of the tuple, and one hash and one compare per lookup). The
owner id stands for (namespace, exporter), counted per context so ids are reused
(:meth:`KeyCodec.release_many`, :meth:`KeyCodec.sweep`). A flow with a value that does not fit
(a port past 65535, an address longer than 255 bytes...) is keyed by the owner id ``PLAIN``
followed by the text of the plain 9-tuple: never equal to another layout's key, so it is still
exactly one context, and read back with :func:`ast.literal_eval`.
"""
from __future__ import annotations

import ast
import operator
import struct
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from flowpipe.flow import (
    DST_IP,
    DST_PORT,
    EXPORTER,
    KEY_WIDTH,
    NAMESPACE,
    ROLLED_UP,
    SCHEMA,
    SRC_IP,
    SRC_PORT,
    as_list,
    key_fields,
)

PLAIN = 0xFFFFFFFF  # the owner id of keys holding the plain 9-tuple (never an exporter's)
_PLAIN = PLAIN.to_bytes(4, "big")
# The key's integer fields (ports, protocol, tos, input interface: flowpipe.flow.KEY_WIDTH), then the
# rolled-up side.
_INTS = tuple(KEY_WIDTH)
_NAMES = tuple(SCHEMA[i].name for i in _INTS)
_CODES = {1: "B", 2: "H", 4: "I"}
_TAIL_FORMAT = "".join(_CODES[KEY_WIDTH[i]] for i in _INTS) + "B"
_TAIL = struct.Struct(">" + _TAIL_FORMAT)
_SP, _DP = _INTS.index(SRC_PORT), _INTS.index(DST_PORT)
_HEAD = 6
_OWNER = operator.itemgetter(slice(0, 4))


def _owners(keys: list[Key]) -> list[tuple[int, int]]:
    """(owner id, count) of ``keys`` (plain keys have no owner: left out)."""
    return [(int.from_bytes(o, "big"), n) for o, n in Counter(map(_OWNER, keys)).items() if o != _PLAIN]


Key = bytes


class KeyCodec:
    """Makes and reads context keys; owns the owner ids."""

    def __init__(self) -> None:
        self._structs: dict[tuple[int, int], struct.Struct] = {}
        self._dtypes: dict[tuple[int, int], np.dtype[Any]] = {}
        self.clear()

    def clear(self) -> None:
        """Forget every owner (no context holds a key any more)."""
        self._ids: dict[tuple[str, str], int] = {}
        self._owners: list[tuple[str, str] | None] = []
        self._refs: list[int] = []
        self._free: list[int] = []

    # ---- owners

    def owner(self, ns: str, exporter: str) -> int:
        """The id of (namespace, exporter), made if new (see :meth:`sweep`)."""
        k = (ns, exporter)
        i = self._ids.get(k)
        if i is None:
            if self._free:
                i = self._free.pop()
                self._owners[i] = k
                self._refs[i] = 0
            else:
                i = len(self._owners)
                self._owners.append(k)
                self._refs.append(0)
            self._ids[k] = i
        return i

    def hold(self, key: Key) -> None:
        """A context now has ``key``."""
        owner = int.from_bytes(key[:4], "big")
        if owner != PLAIN:
            self._refs[owner] += 1

    def hold_ids(self, owners: Any) -> None:
        """Contexts now have keys of these owner ids (an array, one per context)."""
        ids, counts = np.unique(owners, return_counts=True)
        refs = self._refs
        for owner, n in zip(ids.tolist(), counts.tolist(), strict=True):
            refs[owner] += n

    def release_many(self, keys: list[Key]) -> None:
        """The contexts with ``keys`` are gone."""
        refs = self._refs
        for owner, n in _owners(keys):
            refs[owner] -= n

    def sweep(self) -> None:
        """Forget the owners no context uses (their ids are reused)."""
        ids, refs, owners = self._ids, self._refs, self._owners
        if len(ids) <= 64:
            return
        for i, k in enumerate(owners):
            if k is not None and refs[i] == 0:
                del ids[k]
                owners[i] = None
                self._free.append(i)

    # ---- keys

    def _dtype(self, lens: tuple[int, int]) -> np.dtype[Any]:
        """The key's layout for these address lengths, as a numpy dtype."""
        dt = self._dtypes.get(lens)
        if dt is None:
            fields = [("o", ">u4"), ("ls", "u1"), ("ld", "u1")]
            fields += [("src", f"V{lens[0]}")] if lens[0] else []
            fields += [("dst", f"V{lens[1]}")] if lens[1] else []
            fields += [(name, f">u{w}" if w > 1 else "u1") for name, w in zip(_NAMES, KEY_WIDTH.values(), strict=True)]
            fields += [("roll", "u1")]
            dt = self._dtypes[lens] = np.dtype(fields)
        return dt

    def of_flow(self, f: tuple) -> Key:
        """The key of a flow tuple."""
        src, dst = f[SRC_IP], f[DST_IP]
        ints = [f[i] for i in _INTS]
        roll = 0
        if ints[_SP] == ROLLED_UP:
            ints[_SP], roll = 0, 1
        elif ints[_DP] == ROLLED_UP:
            ints[_DP], roll = 0, 2
        lens = (len(src), len(dst))
        st = self._structs.get(lens)
        if st is None:
            if lens[0] > 255 or lens[1] > 255:
                return _plain(f)
            st = self._structs[lens] = struct.Struct(f">IBB{lens[0]}s{lens[1]}s{_TAIL_FORMAT}")
        try:
            return st.pack(self.owner(f[NAMESPACE], f[EXPORTER]), lens[0], lens[1], src, dst, *ints, roll)
        except (struct.error, TypeError):
            return _plain(f)

    def of_columns(self, owners: Any, parts: Sequence[Any], n: int, roll: Any = None) -> Any:
        """Keys of ``n`` flows from their owner ids (:meth:`owner`) and key columns (src ip, dst ip,
        src port, dst port, protocol, tos, input interface; numpy arrays, addresses as
        ``V4``/``V16``, None for absent: empty address, 0), every value in range; ``roll``: the
        rolled-up side of each (0 none, 1 source, 2 destination; that port's column holding 0).
        As one numpy array of ``n`` keys of one width (a key is ``bytes(a[p])``), no object per key."""
        src, dst = parts[0], parts[1]
        lens = (0 if src is None else src.dtype.itemsize, 0 if dst is None else dst.dtype.itemsize)
        dt = self._dtype(lens)
        k = np.zeros(n, dtype=dt)
        k["o"] = owners
        k["ls"], k["ld"] = lens
        for name, col in zip(("src", "dst", *_NAMES), parts, strict=True):
            if col is not None:
                k[name] = col
        if roll is not None:
            k["roll"] = roll
        return k

    def columns_of(self, keys: Sequence[Key]) -> list[list[Any]]:
        """The :meth:`fields` of many keys as nine columns (namespace, exporter, src ip, dst ip, src
        port, dst port, protocol, tos, input interface), read with numpy a key length at a time."""
        n = len(keys)
        lens = np.fromiter(map(len, keys), np.int64, n)
        sizes = np.unique(lens).tolist()
        if len(sizes) == 1:
            got = self._group_columns(keys, sizes[0])
            if got is not None:
                return got
        out: list[list[Any]] = [[None] * n for _ in range(9)]
        for size in sizes:
            pos = np.flatnonzero(lens == size).tolist()
            group = [keys[p] for p in pos]
            cols = self._group_columns(group, size)
            if cols is None:
                cols = [list(c) for c in zip(*map(self.fields, group), strict=True)]
            for col, values in zip(out, cols, strict=True):
                for p, v in zip(pos, values, strict=True):
                    col[p] = v
        return out

    def columns_at(self, table: Any, slots: Any) -> list[Any]:
        """The key columns (as :meth:`columns_of`) of the contexts in ``slots`` (int64) of ``table``
        (:class:`flowpipe.aggregate.contexts.ContextTable`): when every key is of one packed layout,
        read from the table in one buffer, addresses as ``V4``/``V16`` arrays and the integer columns
        as int64 arrays (no object per flow); else lists."""
        n = len(slots)
        if n:
            first = table.keys(slots[:1])[0]
            size = len(first)
            if self._layout(first) is not None:
                buf = np.empty(n * size, dtype=np.uint8)
                if table.keys_into(slots, size, buf):
                    got = self._arrays(buf, first[4], first[5])
                    if got is not None:
                        return got
        return self.columns_of(table.keys(slots))

    @staticmethod
    def _layout(key: Key) -> tuple[int, int] | None:
        """The address lengths of a packed key (None: a plain key)."""
        if len(key) < _HEAD + _TAIL.size or key[:4] == _PLAIN or _HEAD + key[4] + key[5] + _TAIL.size != len(key):
            return None
        return key[4], key[5]

    def _group_columns(self, keys: Sequence[Key], size: int) -> list[list[Any]] | None:
        """:meth:`columns_of` keys of one length, when they are bytes keys of one layout (else None)."""
        if not keys or len(keys[0]) != size:
            return None
        lens = self._layout(keys[0])
        got = None if lens is None else self._arrays(b"".join(keys), *lens)
        return None if got is None else list(map(as_list, got))

    def _arrays(self, buf: Any, ls: int, ld: int) -> list[Any] | None:
        """The key columns of packed keys end to end in ``buf``, all with these address lengths (None
        when some are not, or are plain): namespaces and exporters as lists, the rest as arrays."""
        a = np.frombuffer(buf, dtype=self._dtype((ls, ld)))
        if not (np.all(a["ls"] == ls) and np.all(a["ld"] == ld)) or np.any(a["o"] == PLAIN):
            return None  # same length, other address sizes, or plain keys among them
        n = len(a)
        ints = [a[name].astype(np.int64) for name in _NAMES]
        roll = a["roll"]
        ints[_SP][roll == 1] = ROLLED_UP
        ints[_DP][roll == 2] = ROLLED_UP
        ids, which = np.unique(a["o"], return_inverse=True)
        owners = [self._owners[i] for i in ids.tolist()]
        ns = np.array([o[0] for o in owners], dtype=object)[which].tolist()  # type: ignore[index]
        exporters = np.array([o[1] for o in owners], dtype=object)[which].tolist()  # type: ignore[index]
        return [ns, exporters, np.ascontiguousarray(a["src"]) if ls else [b""] * n,
                np.ascontiguousarray(a["dst"]) if ld else [b""] * n, *ints]

    def fields(self, key: Key) -> tuple:
        """(namespace, exporter, src ip, dst ip, src port, dst port, protocol, tos, input interface),
        ports rolled up as ``ROLLED_UP``."""
        if key[:4] == _PLAIN:
            return ast.literal_eval(key[4:].decode("utf-8", "surrogatepass"))  # type: ignore[no-any-return]
        ls, ld = key[4], key[5]
        a = _HEAD + ls
        b = a + ld
        *ints, roll = _TAIL.unpack_from(key, b)
        if roll == 1:
            ints[_SP] = ROLLED_UP
        elif roll == 2:
            ints[_DP] = ROLLED_UP
        ns, exporter = self._owners[int.from_bytes(key[:4], "big")]  # type: ignore[misc]
        return (ns, exporter, key[_HEAD:a], key[a:b], *ints)


def _plain(f: tuple) -> bytes:
    """The key of a flow whose values do not fit the packed layout: ``PLAIN`` and the 9-tuple's text
    (equal tuples of decoded values, str, bytes and int, have equal texts)."""
    fields = tuple(map(_plain_value, key_fields(f)))
    return _PLAIN + repr(fields).encode("utf-8", "surrogatepass")


def _plain_value(v: Any) -> Any:
    """A key value as the plain type its text reads back as: integers of any kind (bool, numpy) as
    ``int``, byte strings as ``bytes``; equal values then have equal texts."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if not isinstance(v, str) and hasattr(v, "__index__"):
        return operator.index(v)
    return v
