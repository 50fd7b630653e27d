"""Prometheus metrics of a ``kiln serve`` process (prometheus-client, one registry per server).

The scheduler reports through the ``kiln.runtime.scheduler.NullMetrics`` interface; gauges that
are a reading of the scheduler's state (queue depth, running sequences, cache blocks) are read
when ``/metrics`` is scraped.
"""

from __future__ import annotations

import collections
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RATE_WINDOW = 10.0  # seconds of history behind kiln_tokens_per_second

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self, scheduler_ref=lambda: None):
        self.registry = r = CollectorRegistry()
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()
        self.ttft = Histogram("kiln_time_to_first_token_seconds", "Arrival to first generated token",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("kiln_inter_token_latency_seconds", "Time between a sequence's tokens",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.generated = Counter("kiln_generation_tokens", "Tokens generated", registry=r)
        self.prompt = Counter("kiln_prompt_tokens", "Prompt tokens of finished requests", registry=r)
        self.requests = Counter("kiln_requests", "Finished requests by outcome", ["outcome"], registry=r)
        self.rejected = Counter("kiln_rejected_requests", "Requests refused before any work, by HTTP status",
                                ["status"], registry=r)
        self.preemptions = Counter("kiln_preemptions", "Sequences preempted for cache room (recomputed later)",
                                   registry=r)
        self.batch_tokens = Histogram("kiln_iteration_tokens", "Tokens per engine iteration",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r)
        self.iteration_seconds = Histogram("kiln_iteration_seconds", "Time of one engine iteration's model call",
                                           buckets=LATENCY_BUCKETS, registry=r)
        sched = scheduler_ref
        for name, doc, fn in (
                ("kiln_queue_depth", "Requests waiting to start", lambda: sched().queue_depth),
                ("kiln_running_sequences", "Sequences being prefilled or decoded", lambda: len(sched().running)),
                ("kiln_cache_blocks_used", "KV-cache blocks in use", lambda: sched().blocks_used),
                ("kiln_cache_blocks_free", "KV-cache blocks free", lambda: sched().blocks_free)):
            Gauge(name, doc, registry=r).set_function(fn)
        Gauge("kiln_tokens_per_second", f"Generated tokens per second over the last {RATE_WINDOW:.0f} s",
              registry=r).set_function(self.tokens_per_second)

    # -- the scheduler's interface (kiln.runtime.scheduler.NullMetrics) ----------------
    def first_token(self, seconds: float) -> None:
        self.ttft.observe(seconds)
        self._count(1)

    def next_tokens(self, seconds_each: float, n: int) -> None:
        for _ in range(n):
            self.itl.observe(seconds_each)
        self._count(n)

    def finished(self, reason: str, prompt_tokens: int, new_tokens: int) -> None:
        self.requests.labels(outcome=reason).inc()
        self.prompt.inc(prompt_tokens)

    def preempted(self) -> None:
        self.preemptions.inc()

    def iteration(self, tokens: int, seconds: float) -> None:
        self.batch_tokens.observe(tokens)
        self.iteration_seconds.observe(seconds)

    # -- the server's ------------------------------------------------------------------
    def reject(self, status: int) -> None:
        self.rejected.labels(status=str(status)).inc()

    def _count(self, n: int) -> None:
        self.generated.inc(n)
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, n))
            while self._recent and self._recent[0][0] < now - RATE_WINDOW:
                self._recent.popleft()

    def tokens_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - RATE_WINDOW:
                self._recent.popleft()
            return sum(n for _, n in self._recent) / RATE_WINDOW

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
