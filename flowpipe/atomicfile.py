"""Files that are either the old version or the new one, never a mix (template state, spool)."""
from __future__ import annotations

import os


def sync_dir(folder: str) -> None:
    """Make renames in ``folder`` durable (OSError when the folder cannot be opened)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, chunks: list[bytes], tmp: str, fsync: bool = True) -> None:
    """Write ``chunks`` to ``tmp``, flush (and fsync), then rename it over ``path``.

    ``tmp`` must be in the same directory; it is removed when anything fails. The directory
    itself is not synced (see :func:`sync_dir`).
    """
    try:
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
