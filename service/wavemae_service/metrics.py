"""Prometheus metrics of one service instance (its own registry, so tests can run several apps).

Names (all prefixed ``wavemae_``):

- ``requests_total{endpoint,method,status}`` and ``request_duration_seconds{endpoint,method}``
- ``queue_spectra{batcher}``: spectra waiting for inference
- ``batch_size_spectra{batcher}`` histogram, ``batch_wait_seconds{batcher}`` histogram (first
  spectrum queued -> batch started), ``inference_seconds{batcher}`` histogram
- ``batches_total{batcher,outcome}``, ``rejections_total{batcher}`` (429s)
- ``model_info{model,version,providers}`` = 1, ``library_entries``
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .batching import BatchObserver

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics(BatchObserver):
    """All metrics of one app; also the batcher's :class:`BatchObserver`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "wavemae_requests_total",
            "HTTP requests by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "wavemae_request_duration_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Gauge(
            "wavemae_queue_spectra", "Spectra waiting for inference.", ["batcher"], registry=r
        )
        self.batch_size = Histogram(
            "wavemae_batch_size_spectra",
            "Spectra per inference batch.",
            ["batcher"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_wait = Histogram(
            "wavemae_batch_wait_seconds",
            "Time from a batch's first queued spectrum to the batch starting.",
            ["batcher"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "wavemae_inference_seconds",
            "Engine time per batch.",
            ["batcher"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batches = Counter(
            "wavemae_batches_total", "Batches run.", ["batcher", "outcome"], registry=r
        )
        self.rejections = Counter(
            "wavemae_rejections_total",
            "Requests refused with 429 because the queue was full.",
            ["batcher"],
            registry=r,
        )
        self.model_info = Gauge(
            "wavemae_model_info",
            "The served model (value is always 1).",
            ["model", "version", "providers"],
            registry=r,
        )
        self.library_entries = Gauge(
            "wavemae_library_entries", "Entries in the reference library.", registry=r
        )

    # BatchObserver
    def queue_depth(self, name: str, spectra: int) -> None:
        self.queue.labels(name).set(spectra)

    def batch_done(self, name: str, size: int, wait_s: float, run_s: float, ok: bool) -> None:
        self.batch_size.labels(name).observe(size)
        self.batch_wait.labels(name).observe(wait_s)
        self.inference.labels(name).observe(run_s)
        self.batches.labels(name, "ok" if ok else "error").inc()

    def rejected(self, name: str) -> None:
        self.rejections.labels(name).inc()

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, method).observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
