"""A JSON-lines file of payload flows, rotated by size (``file``, ``file.1`` ... ``file.N``)."""
from __future__ import annotations

import os
import stat
from typing import IO

from flowpipe.forward.encode import Flow, json_lines_bytes


class FileSink:
    """Appends flows as JSON lines; before a write would pass ``max_bytes`` the file is rotated.

    ``backups`` rotated files are kept (0 = the current file is truncated instead). Blocking I/O:
    the forwarder calls :meth:`write` from a worker thread.
    """

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._f: IO[bytes] = open(path, "ab")  # noqa: SIM115 - kept open across writes
        # Only a regular file is rotated: a device or FIFO (/dev/null, /dev/stdout, a pipe) is
        # written as it is — renaming /dev/null away would break the whole machine.
        self._rotates = stat.S_ISREG(os.fstat(self._f.fileno()).st_mode)
        self._size = self._f.tell() if self._rotates else 0

    def write(self, flows: list[Flow]) -> None:
        """Append one line per flow and flush."""
        data = json_lines_bytes(flows)
        if self._rotates and self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._f.write(data)
        self._f.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        self._f.close()
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                older = f"{self.path}.{i}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._f = open(self.path, "wb")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._f.close()
