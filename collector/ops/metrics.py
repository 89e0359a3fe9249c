"""Prometheus metrics: current state read at scrape time, ingest counters owned by the app.

A store watching 10,000 hosts x 12 checks answers a scrape with several hundred thousand
lines, so the families read from the store are ``TextFamily`` objects: their lines are
built straight from the query rows (one query per family, label strings cached per host),
and ``render_metrics`` writes them as they are. ``prometheus_client.generate_latest``
still reads them as ordinary families (``samples``), only slower.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from pydantic_core import from_json
from sqlalchemy import Engine, Text, and_, cast, select

from checks.result import Status
from collector.hosts.models import Customer, Host
from collector.state.models import SILENCE_CHECK, SILENCE_TARGET, CheckState

log = logging.getLogger(__name__)

REJECT_REASONS = (
    "not_authenticated", "forbidden", "payload_too_large", "unsupported_encoding",
    "invalid_payload", "store_unavailable",
)


class IngestMetrics:
    """Counters and histograms of this process's ingest path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # No *_created series: in the text format they are extra gauges per counter and
        # histogram child, which Prometheus does not use.
        disable_created_metrics()  # type: ignore[no-untyped-call]
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


def escape_label(value: str) -> str:
    """A label value as the text format writes it between double quotes."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def format_value(value: float) -> str:
    """A sample value as the text format writes it (Go's spelling of the special values)."""
    text = repr(float(value))
    return _SPECIAL.get(text, text) if text[-1] in "fn" else text


class TextFamily(Metric):
    """A gauge or counter family whose text lines are built directly from rows.

    ``add(labels, value)`` takes the label values already escaped (``escape_label``), in
    the order of ``labelnames``; a counter's name is given without ``_total``.
    """

    def __init__(self, name: str, documentation: str, typ: str,
                 labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, typ)
        self.labelnames = tuple(labelnames)
        self.sample_name = f"{name}_total" if typ == "counter" else name
        pairs = ",".join(f'{label}="%s"' for label in self.labelnames)
        self.template = f"{self.sample_name}{{{pairs}}} %s\n" if pairs else \
            f"{self.sample_name} %s\n"
        self.lines: list[str] = []

    @property
    def samples(self) -> list[Sample]:
        """The lines as samples, for readers other than ``render_metrics`` (slower)."""
        found = []
        for line in self.lines:
            labels, _, value = line.rpartition("} ")
            found.append(Sample(self.sample_name, {
                name: _unescape(escaped) for name, escaped in _LABEL.findall(labels)
            } if labels else {}, float(value) if labels else float(line.split()[-1])))
        return found

    @samples.setter
    def samples(self, _value: list[Sample]) -> None:
        pass  # Metric.__init__ sets an empty list; the lines are the samples

    def add(self, labels: tuple[str, ...], value: float) -> None:
        """One sample; ``labels`` escaped, in the order of ``labelnames``."""
        self.lines.append(self.template % (*labels, format_value(value)))

    def text(self) -> str:
        """The family in the Prometheus text format (HELP, TYPE, its lines)."""
        help_text = self.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        return (f"# HELP {self.sample_name} {help_text}\n"
                f"# TYPE {self.sample_name} {self.type}\n" + "".join(self.lines))


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out, chars = [], iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following == "n" else following)
        else:
            out.append(char)
    return "".join(out)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render_metrics(registry: Collector) -> bytes:
    """The registry in the Prometheus text format: ``generate_latest``'s output, but the
    ``TextFamily`` families are written as built, without a Python object per sample."""
    parts: list[str] = []
    plain: list[Metric] = []
    for family in registry.collect():
        if isinstance(family, TextFamily):
            if plain:
                parts.append(generate_latest(_Families(plain)).decode())
                plain = []
            parts.append(family.text())
        else:
            plain.append(family)
    if plain:
        parts.append(generate_latest(_Families(plain)).decode())
    return "".join(parts).encode()


class StateCollector(Collector):
    """Reads the current state from the store on every scrape, and says how the store did."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> Iterable[Metric]:
        return []  # no query at registration time

    def collect(self) -> Iterator[Metric]:
        store_up = GaugeMetricFamily(
            "watchkeeper_store_up",
            "1 when the store answered this scrape's queries of the current state, else 0.")
        duration = GaugeMetricFamily(
            "watchkeeper_store_query_duration_seconds",
            "Time this scrape's queries of the current state took in the store.")
        started = time.perf_counter()
        try:
            families = self._read()
        except Exception as exc:  # a scrape must still answer, and say the store did not
            log.warning("metrics: the store did not answer: %s", exc)
            families = []
            store_up.add_metric([], 0.0)
        else:
            store_up.add_metric([], 1.0)
        duration.add_metric([], time.perf_counter() - started)
        yield from families
        yield store_up
        yield duration

    def _read(self) -> list[Metric]:
        status = TextFamily(
            "watchkeeper_check_status",
            "Current status of a check (Nagios code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).",
            "gauge", ["customer", "host", "check", "target"])
        values = TextFamily(
            "watchkeeper_check_metric",
            "Latest value of a metric a check reported (in the unit the check gives it).",
            "gauge", ["customer", "host", "check", "target", "metric"])
        last_seen = TextFamily(
            "watchkeeper_host_last_seen_timestamp_seconds",
            "When the host's last push arrived (Unix time); 0 if it never pushed.",
            "gauge", ["customer", "host"])
        silent = TextFamily(
            "watchkeeper_host_silent",
            "1 while the host has stopped pushing (host silence), else 0.",
            "gauge", ["customer", "host"])
        with self._engine.connect() as conn:
            hosts = conn.execute(
                select(Host.id, Customer.name, Host.fqdn, Host.last_seen_at, CheckState.status)
                .join(Customer, Customer.id == Host.customer_id)
                .outerjoin(CheckState, and_(CheckState.host_id == Host.id,
                                            CheckState.check == SILENCE_CHECK,
                                            CheckState.target == SILENCE_TARGET))
            ).all()
            # Straight from the driver's cursor (these rows are plain values), the metrics'
            # JSON as text: decoded below by pydantic-core, ~3x faster than the json module.
            query = select(CheckState.host_id, CheckState.check, CheckState.target,
                           CheckState.status, cast(CheckState.metrics, Text))
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(str(query.compile(conn)))
                states = cursor.fetchall()
            finally:
                cursor.close()
        hosts_of: dict[int, str] = {}
        for host_id, customer, fqdn, seen, silence in hosts:
            labels = (escape_label(customer), escape_label(fqdn))
            # customer="%s" in the templates below takes both labels at once
            hosts_of[host_id] = f'{labels[0]}",host="{labels[1]}'
            last_seen.add(labels, seen or 0.0)
            silent.add(labels, 1.0 if silence == Status.CRITICAL else 0.0)
        # Label strings are escaped once per host, check, target and metric name; each
        # line is the state's label prefix and its value.
        status_lines, value_lines = status.lines, values.lines
        status_head = status.template.split("%s", 1)[0]
        value_head = values.template.split("%s", 1)[0]
        codes = {code: f" {format_value(code)}\n" for code in range(4)}
        label = _Escaped()
        for host_id, check, target, code, metrics in states:
            host = hosts_of.get(host_id)
            if host is None:
                continue  # a host enrolled between the two queries
            state_labels = f'{host}",check="{label[check]}",target="{label[target]}"'
            end = codes.get(code) or _line_end(code)
            status_lines.append(f"{status_head}{state_labels}}}{end}")
            if metrics and metrics != "[]":
                prefix = f'{value_head}{state_labels},metric="'
                for name, value in _metric_values(metrics):
                    value_lines.append(f'{prefix}{label[name]}"}} {value}\n')
        return [status, values, last_seen, silent]


def _line_end(code: float) -> str:
    return f" {format_value(code)}\n"


class _Escaped(dict[str, str]):
    """Escaped label values, each escaped on first use."""

    def __missing__(self, value: str) -> str:
        self[value] = escaped = escape_label(value)
        return escaped


def _metric_values(metrics: str) -> list[tuple[str, str]]:
    """(name, formatted value) of a state's metrics (their JSON text): numbers only, each
    name once (the first)."""
    found: list[tuple[str, str]] = []
    try:
        for metric in from_json(metrics):
            name, value = metric.get("name"), metric.get("value")
            if value is not None and isinstance(name, str):
                if found and any(name == seen for seen, _ in found):
                    continue
                found.append((name, format_value(value)))
    except (ValueError, TypeError, AttributeError):
        return []  # not a list of metrics: nothing to show
    return found
