"""NetFlow v5/v9, IPFIX and sFlow decoding, and the decoder stage (:mod:`flowpipe.decode.stage`)."""
from __future__ import annotations

from typing import Any


def runtime_collectors(registry: Any) -> list[Any]:
    """For the metrics reference: the collectors this stage adds to a registry at run time (an sFlow
    listener's interface counters), added to ``registry``."""
    from flowpipe.telemetry.sflow_counters import InterfaceCounterMetrics  # noqa: PLC0415 - only for the docs

    return [InterfaceCounterMetrics(registry)]
