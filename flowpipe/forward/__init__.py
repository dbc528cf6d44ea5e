"""Delivery of payload flows: HTTP backend with retries and a disk spool, stdout, or a JSON-lines file."""
from flowpipe.forward.forwarder import Forwarder

__all__ = ["Forwarder"]
