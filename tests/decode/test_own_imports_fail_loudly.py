"""flowpipe's own decoders are imported like any module: if one cannot be imported, start-up fails
(never a per-datagram "unsupported" at run time)."""
from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize("own", ["flowpipe.decode.sflow", "flowpipe.decode.template_decoder",
                                 "flowpipe.telemetry.sflow_counters"])
def test_a_missing_own_module_fails_the_import_of_the_decoder_stage(monkeypatch: pytest.MonkeyPatch,
                                                                    own: str) -> None:
    decode = importlib.import_module("flowpipe.decode")
    # the modules in use, imported before anything is broken (when this test runs first too); they come back after
    in_use = {name: importlib.import_module(f"flowpipe.decode.{name}") for name in ("dispatch", "stage")}
    package, _, leaf = own.rpartition(".")
    monkeypatch.setitem(sys.modules, own, None)  # makes "import own" raise ImportError
    monkeypatch.delattr(importlib.import_module(package), leaf, raising=False)
    for name, module in in_use.items():  # imported afresh below
        monkeypatch.setattr(decode, name, module)
        monkeypatch.delitem(sys.modules, f"flowpipe.decode.{name}")
    with pytest.raises(ImportError):
        importlib.import_module("flowpipe.decode.stage")
