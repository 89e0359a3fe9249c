"""Prometheus metrics: current state read at scrape time, ingest counters owned by the app."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, and_, select

from checks.result import Status
from collector.hosts.models import Customer, Host
from collector.state.models import SILENCE_CHECK, SILENCE_TARGET, CheckState

REJECT_REASONS = (
    "not_authenticated", "forbidden", "payload_too_large", "unsupported_encoding",
    "invalid_payload", "store_unavailable",
)


class IngestMetrics:
    """Counters and histograms of this process's ingest path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter(
            "watchkeeper_ingest_batches", "Pushed batches by outcome (stored, duplicate, "
            "rejected).", ["outcome"], registry=registry,
        )
        self.results = Counter(
            "watchkeeper_ingest_results", "Results accepted in stored batches.",
            registry=registry,
        )
        self.rejected = Counter(
            "watchkeeper_ingest_rejected", "Pushes refused, by reason.", ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "watchkeeper_ingest_request_duration_seconds",
            "Time from receiving a push to answering it.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.commit = Histogram(
            "watchkeeper_ingest_commit_duration_seconds",
            "Duration of one group-commit transaction.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.group_batches = Histogram(
            "watchkeeper_ingest_group_batches",
            "Batches stored together in one group-commit transaction.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=registry,
        )
        # Children bound once: a labels() lookup per push is measurable on the ingest path.
        self.stored = self.batches.labels("stored")
        self.duplicate = self.batches.labels("duplicate")
        self.rejected_batch = self.batches.labels("rejected")
        self.rejected_by = {reason: self.rejected.labels(reason) for reason in REJECT_REASONS}

    def observe_group(self, size: int, seconds: float) -> None:
        """The writer's observer: one committed group."""
        self.group_batches.observe(size)
        self.commit.observe(seconds)


class StateCollector(Collector):
    """Reads the current state from the store on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # no query at registration time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "watchkeeper_check_status",
            "Current status of a check (Nagios code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).",
            labels=["customer", "host", "check", "target"],
        )
        last_seen = GaugeMetricFamily(
            "watchkeeper_host_last_seen_timestamp_seconds",
            "When the host's last push arrived (Unix time); 0 if it never pushed.",
            labels=["customer", "host"],
        )
        silent = GaugeMetricFamily(
            "watchkeeper_host_silent",
            "1 while the host has stopped pushing (host silence), else 0.",
            labels=["customer", "host"],
        )
        with self._engine.connect() as conn:
            hosts = conn.execute(
                select(Customer.name, Host.fqdn, Host.last_seen_at, CheckState.status)
                .join(Customer, Customer.id == Host.customer_id)
                .outerjoin(CheckState, and_(CheckState.host_id == Host.id,
                                            CheckState.check == SILENCE_CHECK,
                                            CheckState.target == SILENCE_TARGET))
            ).all()
            states = conn.execute(
                select(Customer.name, Host.fqdn, CheckState.check, CheckState.target,
                       CheckState.status)
                .join(Host, Host.id == CheckState.host_id)
                .join(Customer, Customer.id == Host.customer_id)
            ).all()
        for customer, fqdn, seen, silence in hosts:
            last_seen.add_metric([customer, fqdn], seen or 0.0)
            silent.add_metric([customer, fqdn], 1.0 if silence == Status.CRITICAL else 0.0)
        for customer, fqdn, check, target, code in states:
            status.add_metric([customer, fqdn, check, target], float(code))
        yield status
        yield last_seen
        yield silent
