"""The exporter's errors: one base, :class:`ExportError`, and a kind per cause.

:class:`ConfigError` here is the exporter's (an exporter conf file or argument); the collector's
TOML configuration has its own, unrelated ``flowpipe.config.ConfigError``.
"""
from __future__ import annotations


class ExportError(Exception):
    """Base of every error the exporter raises."""


class TemplateError(ExportError):
    """A template that cannot be encoded: unknown field type, bad length, bad template id."""


class RecordError(ExportError):
    """A record that does not fit its template: "record INDEX: DETAIL". ``index`` is its position in
    the batch given to the call that raised; ``field`` names the field at fault, when one is."""

    def __init__(self, detail: str, index: int = 0, field: str = "") -> None:
        super().__init__(f"record {index}: {detail}")
        self.detail, self.index, self.field = detail, index, field

    def shifted(self, offset: int) -> RecordError:
        """The same error for a record ``offset`` places further on in a larger batch."""
        return RecordError(self.detail, self.index + offset, self.field)


class ConfigError(ExportError):
    """An exporter conf file or setting that cannot be used (not the collector's ``flowpipe.config.ConfigError``)."""


class TargetError(ExportError):
    """A target that cannot be parsed or resolved."""
