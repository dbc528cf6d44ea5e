"""Enrichment stages between the accumulator's flush and the forwarder."""
from flowpipe.enrich.rdns import ReverseDnsEnricher, qualifies

__all__ = ["ReverseDnsEnricher", "qualifies"]
