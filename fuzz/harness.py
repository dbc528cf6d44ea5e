"""What the three atheris harnesses share: seeds as corpus files, structure-aware mutators, main().

Each harness instruments ``flowpipe.decode`` (coverage guidance), runs one checker from
:mod:`fuzz.checks` per input and turns a :class:`~fuzz.checks.Violation` into a libFuzzer crash.
``python -m fuzz.fuzz_X --write-seeds DIR [--captures]`` writes its seed inputs as files (the
committed corpus comes from the encoders; the real captures are added at run time only).
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_seeds(directory: str, inputs: list[bytes]) -> int:
    """Seed inputs as files named by their SHA-1 (libFuzzer's own naming); returns how many new."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in inputs:
        p = d / hashlib.sha1(data).hexdigest()  # noqa: S324 - a name, not security
        if not p.exists():
            p.write_bytes(data)
            n += 1
    return n


def byte_mutator(atheris: Any, pool: list[bytes]) -> Callable[[bytes, int, int], bytes]:
    """Half libFuzzer's own mutations, half lies in lengths/counts/ids (fuzz.structure), some splicing."""
    from fuzz import structure

    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        r = rng.random()
        if r < 0.05 and pool:
            data = rng.choice(pool)
        if r < 0.5:
            out = atheris.Mutate(data, max_size)
        else:
            out = structure.mutate(data, rng, rng.randrange(1, 4))
            if rng.random() < 0.3:
                out = structure.fix_lengths(out)
        return bytes(out[:max_size])
    return mutate


def main(argv: list[str], test_one: Callable[[bytes], None], seeds: Callable[[bool], list[bytes]],
         mutator: Callable[[bytes, int, int], bytes] | None, atheris: Any) -> None:
    if "--write-seeds" in argv:
        i = argv.index("--write-seeds")
        n = write_seeds(argv[i + 1], seeds("--captures" in argv))
        print(f"{n} seed inputs written to {argv[i + 1]}")
        return
    atheris.Setup(argv, test_one, custom_mutator=mutator)
    atheris.Fuzz()
