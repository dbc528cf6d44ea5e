"""atheris harness: NetFlow v9 / IPFIX template decoder, with state across inputs (see fuzz/README.md).

An input is a datagram sequence (fuzz.checks input format: exporter, source port and clock move
per datagram). Each input runs on a fresh decoder -- so a crash file reproduces by itself -- and
also on one long-lived decoder that every input of the run feeds, with small caps, so state
built over millions of inputs must stay under them. When only the long-lived decoder breaks, the
last inputs are written, concatenated, to ``state-crash-<pid>`` in the artifact directory
(replay: ``python -m fuzz.fuzz_template state-crash-...``, which feeds it to a fresh decoder).
"""
from __future__ import annotations

import os
import random
import sys
from collections import deque

import atheris

from fuzz import seeds  # (the encoders: not instrumented)
from fuzz.harness import main

with atheris.instrument_imports(include=["flowpipe.decode"]):
    from flowpipe.decode import elements, ipfix, netflow9, template_decoder, templates  # noqa: F401
    from fuzz import checks, structure

HISTORY = 64
_history: deque[bytes] = deque(maxlen=HISTORY)
_compiled: dict = {}  # type: ignore[type-arg]
_state = checks.TemplateRun(pipeline=False, compiled=_compiled, timing=False)


def _artifact_dir() -> str:
    for a in sys.argv:
        if a.startswith("-artifact_prefix="):
            return a.split("=", 1)[1]
    return "./"


_count = [0, 0]  # inputs, datagrams (the fresh decoder's)


def test_one(data: bytes) -> None:
    global _state
    run = checks.TemplateRun(compiled=_compiled)
    run.run(data)
    _count[0] += 1
    _count[1] += run.datagrams
    if _count[0] % 100_000 == 0:
        print(f"#{_count[0]} inputs, {_count[1]} datagrams decoded (fresh decoders); long-lived decoder: "
              f"{_state.datagrams} datagrams, {_state.dec.registry.stats.templates} templates, "
              f"{_state.dec.hold.held} held", file=sys.stderr)
    _history.append(data)
    try:
        _state.run(data)
    except checks.Violation:
        path = f"{_artifact_dir()}state-crash-{os.getpid()}"
        with open(path, "wb") as f:
            f.write(b"".join(_history))
        print(f"long-lived decoder broke an invariant; last {len(_history)} inputs in {path}", file=sys.stderr)
        raise
    if _state.datagrams > 5_000_000:  # keep clock and counters in a sane range on very long runs
        _state = checks.TemplateRun(pipeline=False, compiled=_compiled, timing=False)


def corpus(captures: bool) -> list[bytes]:
    out = []
    for i, seq in enumerate(seeds.template_sequences()):
        out.append(checks.pack_steps((i & 7, d) for d in seq))
        out += [checks.pack_steps([(0, d)]) for d in seq]
    if captures:
        for p in ("nf9_", "ipfix_"):
            for _, grams in seeds.capture_payloads(p):
                out.append(checks.pack_steps((1, d) for d in grams[:24]))
                out += [checks.pack_steps([(2, d)]) for d in grams[:8]]
    return out


_POOL: list[list[tuple[int, bytes]]] = []


def mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Mutate one datagram (structure-aware or libFuzzer's), or the sequence: repeat, swap, drop, splice."""
    rng = random.Random(seed)
    if not _POOL:
        _POOL.extend(checks.steps(s) for s in corpus(True))
    items = checks.steps(data)
    if not items or rng.random() < 0.03:
        items = list(rng.choice(_POOL))
    op = rng.randrange(12)
    i = rng.randrange(len(items))
    ctrl, d = items[i]
    if op < 4:
        d = structure.mutate(d, rng, rng.randrange(1, 4))
        items[i] = (ctrl, structure.fix_lengths(d) if rng.random() < 0.5 else d)
    elif op < 7:
        items[i] = (ctrl, bytes(atheris.Mutate(d, min(max_size, 2 * len(d) + 64))))
    elif op == 7:
        items.insert(rng.randrange(len(items) + 1), items[i])
    elif op == 8 and len(items) > 1:
        j = rng.randrange(len(items))
        items[i], items[j] = items[j], items[i]
    elif op == 9 and len(items) > 1:
        del items[i]
    elif op == 10:
        items[i] = (rng.randrange(256), d)
    else:
        other = rng.choice(_POOL)
        items.insert(rng.randrange(len(items) + 1), rng.choice(other))
    out = checks.pack_steps(items)
    while len(out) > max_size and len(items) > 1:
        items.pop()
        out = checks.pack_steps(items)
    return out[:max_size]


if __name__ == "__main__":
    main(sys.argv, test_one, corpus, mutator, atheris)
