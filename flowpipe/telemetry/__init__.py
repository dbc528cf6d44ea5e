"""Device telemetry exposed as Prometheus metrics (sFlow interface counters)."""
