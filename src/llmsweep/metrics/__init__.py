"""Prometheus metric names, the Pushgateway summary push, and exporters."""
