"""Operational endpoints: /healthz and the Prometheus /metrics."""
