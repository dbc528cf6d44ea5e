"""The flow accumulator: contexts keyed like the Datadog Agent's flow key, port rollup, sequences."""
