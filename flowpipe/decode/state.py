"""Saving and reloading template state (``decoder.state_file``) so a restart decodes at once.

:func:`save` writes msgpack to a temporary file in the same directory, fsyncs it and renames it
over ``path``, so a reader sees the old file or the new one, never a mix. The file carries a
magic, a format version and a CRC-32 of the payload: :func:`read` reports a torn, corrupt or
foreign file as (None, why) instead of raising, and :func:`load` logs that and returns None.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from flowpipe.atomicfile import sync_dir, write_atomic
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.listen_config import ListenerConfig

MAGIC = "flowpipe-template-state"
FORMAT = 1
log = logging.getLogger(__name__)


def save(path: str, snapshot: dict[str, Any]) -> None:
    """Write ``snapshot`` to ``path`` atomically (OSError/TypeError when it cannot)."""
    payload = msgpack.packb(snapshot, use_bin_type=True)
    blob = msgpack.packb({"magic": MAGIC, "format": FORMAT, "crc": zlib.crc32(payload), "payload": payload},
                         use_bin_type=True)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".state", dir=folder)
    os.close(fd)
    write_atomic(path, [blob], tmp)
    try:  # make the rename itself durable
        sync_dir(folder)
    except OSError:
        pass


def read(path: str) -> tuple[dict[str, Any] | None, str]:
    """(snapshot, "") or (None, why it could not be used)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        return None, f"{path}: no saved template state yet"
    except OSError as e:
        return None, f"{path}: cannot read: {e.strerror}"
    try:
        outer = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        if not isinstance(outer, dict) or outer.get("magic") != MAGIC:
            return None, f"{path}: not a flowpipe template state file"
        if outer.get("format") != FORMAT:
            return None, f"{path}: state format {outer.get('format')!r} is not {FORMAT}"
        payload = outer.get("payload")
        if not isinstance(payload, bytes) or zlib.crc32(payload) != outer.get("crc"):
            return None, f"{path}: checksum mismatch (torn or corrupt file)"
        snap = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as e:  # any unpacking failure means the file cannot be used
        return None, f"{path}: corrupt state file ({type(e).__name__}: {e})"
    if not isinstance(snap, dict):
        return None, f"{path}: state is not a map"
    return snap, ""


def load(path: str) -> dict[str, Any] | None:
    """The saved snapshot, or None (a missing file quietly, anything else with a warning)."""
    snap, why = read(path)
    if snap is None:
        if os.path.exists(path):
            log.warning("template state not loaded: %s", why)
        else:
            log.info("%s", why)
    return snap


def listener_key(lc: ListenerConfig) -> str:
    """The key a listener's template state is saved under: "flow_type:bind_host:port"."""
    return f"{lc.flow_type}:{lc.bind_host}:{lc.port}"


def restore_decoders(paths: Sequence[str], decoders: Iterable[tuple[str, DatagramDecoder]]) -> int:
    """Restore each (key, decoder)'s template state from every file of ``paths`` in turn (see :func:`load`);
    returns how many listener states were restored."""
    restored = 0
    pairs = [(key, d) for key, d in decoders if d.templates is not None]
    for path in paths:
        snap = load(path) or {}
        for key, d in pairs:
            part = snap.get(key)
            if d.templates is not None and isinstance(part, dict):
                d.templates.restore(part)
                restored += 1
    return restored


def save_decoders(path: str, decoders: Iterable[tuple[str, DatagramDecoder]]) -> None:
    """Save each (key, decoder)'s template state to ``path`` (see :func:`save`)."""
    save(path, {key: d.templates.snapshot() for key, d in decoders if d.templates is not None})


def worker_state_file(path: str, index: int) -> str:
    """Worker ``index``'s own template state file: ``path`` with ``.w<index>`` added."""
    return f"{path}.w{index}"


def state_files(path: str) -> list[str]:
    """The template state files a process with ``state_file = path`` reads at start: its own first
    (there or not), then, for a worker, its siblings' and the single-process file that exist; after a
    restart the kernel may hand an exporter to another worker than before."""
    base = re.sub(r"\.w\d+$", "", path)
    found = [path, *sorted(glob.glob(glob.escape(base) + ".w*")), base]
    return [p for p in dict.fromkeys(found) if p == path or os.path.exists(p)]
