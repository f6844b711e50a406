"""Prometheus metrics, one registry per app (so tests and several apps never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "alt_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.errors = Counter("alt_errors", "Errors by kind", ["kind"], registry=r)
        self.stage = Histogram(
            "alt_stage_seconds", "Latency by stage", ["stage"], buckets=_LATENCY, registry=r
        )
        self.batch_size = Histogram(
            "alt_batch_clips",
            "Clips per forward pass",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
            registry=r,
        )
        self.queue_depth = Gauge("alt_queue_depth", "Jobs waiting for the model", registry=r)
        self.connections_closed = Counter(
            "alt_http_connections_closed",
            "Connections the server answered and closed before the app ran, by reason",
            ["reason"],
            registry=r,
        )
        self.label_cache = Counter(
            "alt_label_cache", "Label-set embedding cache lookups", ["result"], registry=r
        )
        # Live streams (POST /streams)
        self.streams = Gauge("alt_streams", "Streams watched, by state", ["state"], registry=r)
        self.stream_windows = Counter(
            "alt_stream_windows",
            "Stream windows labelled, or dropped because the model was behind",
            ["result"],
            registry=r,
        )
        self.stream_events = Counter(
            "alt_stream_events", "Stream events sent, by kind", ["event"], registry=r
        )
        self.stream_reconnects = Counter(
            "alt_stream_reconnects", "Stream sources lost and reconnected", registry=r
        )
        self.stream_delay = Histogram(
            "alt_stream_delay_seconds",
            "From a window's last sampled frame to its label",
            buckets=_LATENCY,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
