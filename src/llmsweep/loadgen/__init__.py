"""The load generator: streaming requests, load patterns, and the metric math."""
