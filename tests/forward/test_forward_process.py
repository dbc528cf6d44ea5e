"""Real processes: a restart in the middle of an outage, and SIGKILL while spooling.

Each test drives tests/support/forward_child.py (one Forwarder in its own process) over stdin/stdout.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowpipe.forward.spool import HEADER
from tests.support import ROOT
from tests.support.backend import Backend, seqs


class Child:
    """One forward_child process; :meth:`cmd` sends a command and returns the stats it answers."""

    def __init__(self, tmp: Path, url: str, *args: str) -> None:
        self.err = open(tmp / f"child-{os.getpid()}-{id(self)}.err", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.forward_child", "--url", url, *args],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.expect("ready", 20)

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def expect(self, word: str, timeout: float = 15) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {word!r} from the child within {timeout} s; stderr:\n{self.stderr()}") from None
        got, _, data = line.partition(" ")
        assert got == word, f"expected {word!r}, got {line!r}; stderr:\n{self.stderr()}"
        return json.loads(data)

    def cmd(self, line: str, timeout: float = 15) -> dict[str, Any]:
        assert self.proc.stdin
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        word = {"feed": "fed", "feed_forever": "feeding", "wait": "ok"}.get(line.split()[0], "stats")
        return self.expect(word, timeout)

    def terminate(self, timeout: float = 10) -> dict[str, Any]:
        """SIGTERM; the final stats; asserts exit status 0."""
        self.proc.send_signal(signal.SIGTERM)
        final = self.expect("exit", timeout)
        assert self.proc.wait(5) == 0
        return final

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def stderr(self) -> str:
        self.err.flush()
        self.err.seek(0)
        return self.err.read()[-3000:]


def balanced(s: dict[str, Any]) -> bool:
    return s["handed"] + s["recovered"] == s["sent"] + s["pending"] + sum(s["dropped"].values())


@pytest.mark.slow
def test_restart_in_the_middle_of_an_outage(tmp_path: Path) -> None:
    spool = str(tmp_path / "spool")
    be = Backend().start()
    try:
        a = Child(tmp_path, be.url, "--spool", spool, "--stop-timeout", "1")
        a.cmd("feed 0 3000 500")
        a.cmd("wait sent 3000")
        be.stop()
        a.cmd("feed 3000 3000 500")
        a.cmd("wait backend_up 0")
        s = a.cmd("wait queue 0")                 # everything waiting is on disk
        assert s["pending"] == 3000 and s["spooled"] == 3000
        final = a.terminate()
        assert final["pending"] == 3000 and balanced(final) and not final["dropped"]

        b = Child(tmp_path, be.url, "--spool", spool)   # the backend is still down
        assert b.ready["recovered"] == 3000 and b.ready["corrupt"] == 0
        b.cmd("feed 6000 2000 500")
        be.start()
        s = b.cmd("wait pending 0", timeout=20)
        assert s["sent"] == 5000 and balanced(s)
        assert balanced(b.terminate())
        flows = be.snapshot()[0]
        assert seqs(flows) == list(range(8000)), "every flow once, in order"
        assert sum(f["bytes"] for f in flows) == sum(1000 + i for i in range(8000))
        assert list(Path(spool).glob("*.fps")) == []
    finally:
        be.stop()


@pytest.mark.slow
def test_sigkill_while_spooling_then_next_start_skips_torn_files(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    be = Backend().start()
    be.stop()
    try:
        a = Child(tmp_path, be.url, "--spool", str(spool), "--fsync", "--queue-max", "20000")
        a.cmd("feed_forever 0 500")
        a.cmd("wait backend_up 0")
        end = time.monotonic() + 20
        while len(list(spool.glob("*.fps"))) < 20 and time.monotonic() < end:
            time.sleep(0.02)
        a.kill()                                   # SIGKILL, in the middle of spooling
        files = sorted(spool.glob("*.fps"))
        assert len(files) >= 20
        last = int(files[-1].stem)
        whole = files[0].read_bytes()              # and a torn file and a garbage one, as after power loss
        (spool / f"{last + 1:020d}.fps").write_bytes(whole[: len(whole) // 2])
        (spool / f"{last + 2:020d}.fps").write_bytes(b"\0" * HEADER.size)
        torn = 2 + len(list(spool.glob("*.tmp")))

        be.start()
        b = Child(tmp_path, be.url, "--spool", str(spool))
        assert b.ready["corrupt"] == torn
        recovered = b.ready["recovered"]
        assert recovered >= 20 * 500
        s = b.cmd("wait pending 0", timeout=30)
        assert s["sent"] == recovered and not s["dropped"]
        b.terminate()
        got = seqs(be.snapshot()[0])
        assert len(got) == recovered == len(set(got)), "each spooled flow exactly once"
        assert got == sorted(got)
        assert list(spool.glob("*.fps")) == [] and list(spool.glob("*.tmp")) == []
    finally:
        be.stop()
