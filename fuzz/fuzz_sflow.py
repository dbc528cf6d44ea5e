"""atheris harness: sFlow v5 decoder, sampled header parser included (see fuzz/README.md)."""
from __future__ import annotations

import sys

import atheris

from fuzz import seeds  # (the encoders: not instrumented)
from fuzz.harness import byte_mutator, main

with atheris.instrument_imports(include=["flowpipe.decode"]):
    from flowpipe.decode import packet, sflow  # noqa: F401 - instrumented here
    from fuzz import checks


def test_one(data: bytes) -> None:
    checks.run_sflow(data)


def corpus(captures: bool) -> list[bytes]:
    out = seeds.sflow_seeds()
    if captures:
        out += [g for _, grams in seeds.capture_payloads("sflow5_") for g in grams]
    return out


if __name__ == "__main__":
    main(sys.argv, test_one, corpus, byte_mutator(atheris, corpus(True)), atheris)
