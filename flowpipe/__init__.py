"""flowpipe: a NetFlow v5/v9, IPFIX and sFlow v5 collector that aggregates flows and forwards them."""

__version__ = "0.1.0"
