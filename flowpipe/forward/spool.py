"""The disk spool: one file per batch, named by the batch's sequence number so names sort in order.

A file is a fixed header (magic, flow count, payload length, CRC-32 of the payload, batch id)
followed by the batch's flows as one msgpack array. Files are written under a ``.tmp`` name and
renamed when complete (with fsync unless turned off), so a crash leaves at worst a ``.tmp`` file.
Anything torn or unreadable (a leftover ``.tmp``, a short file, a bad magic or checksum) is
detected, removed and reported, never allowed to stop a start or the delivery of the others.
A lock file keeps two processes from sharing one spool directory.

Not thread-safe: the caller runs one operation at a time (the forwarder holds a lock around them).
"""
from __future__ import annotations

import bisect
import fcntl
import os
import struct
import zlib
from typing import Any, NamedTuple

import attrs
import msgpack

from flowpipe.atomicfile import sync_dir, write_atomic

MAGIC = b"FPSPOOL1"
HEADER = struct.Struct(">8sIII16s")  # magic, flows, payload bytes, crc32(payload), batch id
SUFFIX = ".fps"
TMP_SUFFIX = ".tmp"
LOCK_NAME = "spool.lock"


@attrs.define(slots=True)
class Batch:
    """Flows delivered (or spooled) together. ``seq`` orders batches; ``id`` is stable across retries."""

    seq: int
    flows: list[Any]  # payload objects or their JSON text (msgpack maps or bins)
    id: bytes = attrs.field(factory=lambda: os.urandom(16))
    tried: bool = False  # posted at least once: never merged with others again, so its id holds


class Entry(NamedTuple):
    seq: int
    size: int   # bytes on disk
    flows: int


class CorruptFile(Exception):
    """A spool file that cannot be read back; it has been removed. ``entry.flows`` is from its header."""

    def __init__(self, entry: Entry, reason: str) -> None:
        super().__init__(f"spool file {entry.seq:020d}{SUFFIX}: {reason}")
        self.entry, self.reason = entry, reason


class Spool:
    """Batches on disk, oldest first, at most ``max_bytes`` (the caller drops the oldest past it)."""

    def __init__(self, directory: str, max_bytes: int, fsync: bool = True) -> None:
        self.dir, self.max_bytes, self.fsync = directory, max_bytes, fsync
        self._lock_fd = -1
        os.makedirs(directory, exist_ok=True)
        self._lock_fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise
        self._entries: list[Entry] = []
        self.bytes = 0
        self.flows = 0
        self.in_flight: int | None = None  # seq being delivered: never dropped for space
        self.corrupt_at_open: list[str] = []  # names of torn files found (and removed) when opening
        self._scan()

    # ---- state
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def head_seq(self) -> int | None:
        """The oldest batch's seq, None when empty."""
        return self._entries[0].seq if self._entries else None

    @property
    def last_seq(self) -> int:
        """The newest batch's seq, -1 when empty."""
        return self._entries[-1].seq if self._entries else -1

    def _path(self, seq: int, suffix: str = SUFFIX) -> str:
        return os.path.join(self.dir, f"{seq:020d}{suffix}")

    def _add(self, entry: Entry) -> None:
        bisect.insort(self._entries, entry)
        self.bytes += entry.size
        self.flows += entry.flows

    def _index(self, seq: int) -> int:
        i = bisect.bisect_left(self._entries, seq, key=lambda e: e.seq)
        if i == len(self._entries) or self._entries[i].seq != seq:
            raise KeyError(seq)
        return i

    def _forget(self, seq: int) -> Entry:
        entry = self._entries.pop(self._index(seq))
        self.bytes -= entry.size
        self.flows -= entry.flows
        return entry

    # ---- open
    def _scan(self) -> None:
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            stem, dot, suffix = name.partition(".")
            if "." + suffix == TMP_SUFFIX and stem.isdigit():
                self._discard(path, name)
            elif "." + suffix == SUFFIX and stem.isdigit():
                entry = self._check_header(path, int(stem))
                if entry is None:
                    self._discard(path, name)
                else:
                    self._add(entry)

    def _discard(self, path: str, name: str) -> None:
        self.corrupt_at_open.append(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    @staticmethod
    def _check_header(path: str, seq: int) -> Entry | None:
        try:
            with open(path, "rb") as f:
                head = f.read(HEADER.size)
                size = os.fstat(f.fileno()).st_size
        except OSError:
            return None
        if len(head) != HEADER.size:
            return None
        magic, flows, length, _crc, _bid = HEADER.unpack(head)
        if magic != MAGIC or size != HEADER.size + length:
            return None
        return Entry(seq, size, flows)

    # ---- operations
    def write(self, batch: Batch) -> list[Entry]:
        """Store ``batch``; returns the oldest entries removed to stay within ``max_bytes``."""
        payload = msgpack.packb(batch.flows, use_bin_type=True)
        header = HEADER.pack(MAGIC, len(batch.flows), len(payload), zlib.crc32(payload), batch.id)
        tmp, final = self._path(batch.seq, TMP_SUFFIX), self._path(batch.seq)
        write_atomic(final, [header, payload], tmp, self.fsync)
        if self.fsync:
            sync_dir(self.dir)
        self._add(Entry(batch.seq, HEADER.size + len(payload), len(batch.flows)))
        return self._trim()

    def _trim(self) -> list[Entry]:
        dropped: list[Entry] = []
        i = 0
        while self.bytes > self.max_bytes and i < len(self._entries):
            seq = self._entries[i].seq
            if seq == self.in_flight:
                i += 1
                continue
            dropped.append(self.remove(seq))
        return dropped

    def read(self, seq: int) -> Batch:
        """The batch stored as ``seq``; CorruptFile (after removing the file) when it is torn."""
        entry = self._entries[self._index(seq)]
        try:
            with open(self._path(seq), "rb") as f:
                data = f.read()
            magic, flows, length, crc, bid = HEADER.unpack_from(data)
            payload = data[HEADER.size:]
            if magic != MAGIC or len(payload) != length:
                raise ValueError("torn (bad header or length)")
            if zlib.crc32(payload) != crc:
                raise ValueError("checksum mismatch")
            items = msgpack.unpackb(payload, raw=False)
            if not isinstance(items, list) or len(items) != flows:
                raise ValueError("payload is not the array the header announces")
        except (OSError, ValueError, struct.error, msgpack.UnpackException) as e:
            self.remove(seq)
            raise CorruptFile(entry, str(e)) from None
        return Batch(seq, items, bid)

    def remove(self, seq: int) -> Entry:
        """Delete the batch ``seq`` (delivered, dropped or corrupt)."""
        entry = self._forget(seq)
        if self.in_flight == seq:
            self.in_flight = None
        try:
            os.unlink(self._path(seq))
        except FileNotFoundError:
            pass
        return entry

    def close(self) -> None:
        """Release the directory lock."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    __del__ = close
