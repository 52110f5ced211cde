"""llmsweep: benchmark LLM inference servers over sweeps of models and concurrency."""

__version__ = "0.1.0"
