"""atheris harness: NetFlow v5 decoder (see fuzz/README.md). One datagram per input."""
from __future__ import annotations

import sys

import atheris

from fuzz import seeds  # (the encoders: not instrumented)
from fuzz.harness import byte_mutator, main

with atheris.instrument_imports(include=["flowpipe.decode"]):
    from flowpipe.decode import netflow5  # noqa: F401 - instrumented here
    from fuzz import checks


def test_one(data: bytes) -> None:
    checks.run_netflow5(data)


def corpus(captures: bool) -> list[bytes]:
    out = seeds.v5_seeds()
    if captures:
        out += [g for _, grams in seeds.capture_payloads("nf5_") for g in grams]
    return out


if __name__ == "__main__":
    main(sys.argv, test_one, corpus, byte_mutator(atheris, corpus(True)), atheris)
