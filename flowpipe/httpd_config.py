"""The ``[metrics]`` section: where the metrics endpoint (:mod:`flowpipe.httpd`) listens."""
from __future__ import annotations

import attrs

from flowpipe.sections import key, split_host_port


@attrs.define(slots=True, kw_only=True)
class MetricsConfig:
    """The Prometheus endpoint."""

    listen: str = key("0.0.0.0:9090", None, "host:port serving /metrics and /healthz; \"\" disables")

    def __attrs_post_init__(self) -> None:
        if self.listen:
            try:
                split_host_port(self.listen, None)
            except ValueError as e:
                raise ValueError(f"listen {e}") from None
