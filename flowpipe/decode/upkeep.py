"""The decoders' upkeep beside the pipeline: template state restored at start, saved every minute
and at stop (``decoder.state_file``), and the template registries' statistics turned into metrics
every 2 s."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from flowpipe.decode import state
from flowpipe.decode.config import DecoderConfig
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.template_metrics import TemplateMetrics
from flowpipe.listen_config import ListenerConfig
from flowpipe.logs import event
from flowpipe.metrics import Metrics

STATS_EVERY = 2.0   # seconds between two metric updates from the decoders' statistics
SAVE_EVERY = 60.0   # seconds between two saves of the template state


class DecoderUpkeep:
    """Built from the decoder section and the metrics façade, for the listeners' ``decoders``."""

    def __init__(self, cfg: DecoderConfig, metrics: Metrics, *, listeners: Sequence[ListenerConfig],
                 decoders: Sequence[DatagramDecoder]) -> None:
        self.path = cfg.state_file
        self.listeners, self.decoders = list(listeners), list(decoders)
        self.metrics = TemplateMetrics(metrics)

    def _keyed(self) -> list[tuple[str, DatagramDecoder]]:
        """Each decoder under its listener's key, read when used (a listener's port is known once bound)."""
        return [(state.listener_key(lc), d) for lc, d in zip(self.listeners, self.decoders, strict=True)]

    def load(self) -> None:
        """Restore the template state saved by an earlier run (every worker's file), if any."""
        if self.path:
            restored = state.restore_decoders(state.state_files(self.path), self._keyed())
            if restored:
                event(logging.INFO, "templates_restored", file=self.path, listeners=restored)
        self.metrics.update(self.decoders)

    def save(self) -> None:
        """Save the template state (a failure is logged: the collector goes on without it)."""
        if not self.path:
            return
        try:
            state.save_decoders(self.path, self._keyed())
        except (OSError, TypeError, ValueError) as e:
            event(logging.WARNING, "templates_not_saved", file=self.path, error=str(e))

    async def run(self) -> None:
        """Statistics every :data:`STATS_EVERY` s, the state saved every :data:`SAVE_EVERY` s."""
        saved_at = trio.current_time()
        while True:
            await trio.sleep(STATS_EVERY)
            self.metrics.update(self.decoders)
            if self.path and trio.current_time() - saved_at >= SAVE_EVERY:
                saved_at = trio.current_time()
                self.save()
