"""GET /metrics: the store's counts in Prometheus' text format, for scraping.

Every figure is counted by the database at scrape time (`Measured.measure`: a few aggregate
queries), never kept in this server's memory, so every server on one database reports the same
and a restarted server loses nothing. prometheus_client writes the format; a collector built per
scrape turns the `Measures` into its metric families.

| metric | type | labels |
| --- | --- | --- |
| runplane_runs | gauge | status |
| runplane_journal_steps_total | counter | kind (model, tool) |
| runplane_step_latency_seconds | histogram | kind; from each call's event (`seconds`) |
| runplane_leases_held | gauge | holder (run, task) |
| runplane_queue_depth | gauge | queue, what (run, task) |
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response

from ..engine import Measured, Measures
from ..records import RUN_STATUSES
from .context import engine_of
from .query import query
from .responses import HTTPProblem

__all__ = ["metrics", "render"]


async def metrics(request: Request) -> Response:
    query(request, ())
    engine = engine_of(request)
    if not isinstance(engine, Measured):
        raise HTTPProblem(
            501,
            "not_measured",
            f"the engine this server serves ({engine.describe()}) cannot count its runs; "
            "scrape the server that has the database",
        )
    return Response(render(await engine.measure()), media_type=CONTENT_TYPE_PLAIN_0_0_4)


def render(measures: Measures) -> bytes:
    """`measures` in Prometheus' text format (version 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(measures))
    return generate_latest(registry)


class _Collector:
    def __init__(self, measures: Measures) -> None:
        self.measures = measures

    def collect(self) -> Iterator[Metric]:
        m = self.measures
        runs = GaugeMetricFamily("runplane_runs", "Runs in the store, by status", labels=["status"])
        for status in RUN_STATUSES:  # every status, 0 included: a series never vanishes
            runs.add_metric([status], m.runs.get(status, 0))
        yield runs
        steps = CounterMetricFamily(
            "runplane_journal_steps", "Journaled steps (journal entries), by kind", labels=["kind"]
        )
        for kind in ("model", "tool"):
            steps.add_metric([kind], m.steps.get(kind, 0))
        yield steps
        latency = HistogramMetricFamily(
            "runplane_step_latency_seconds",
            "Latency of journaled model and tool calls, from the seconds their events recorded",
            labels=["kind"],
        )
        for kind, hist in sorted(m.latency.items()):
            buckets = [
                (_bound(b), float(n)) for b, n in zip(hist.buckets, hist.counts, strict=True)
            ]
            latency.add_metric([kind], [*buckets, ("+Inf", float(hist.count))], hist.total)
        yield latency
        leases = GaugeMetricFamily(
            "runplane_leases_held", "Unexpired leases held now, by holder", labels=["holder"]
        )
        for holder in ("run", "task"):
            leases.add_metric([holder], m.leases.get(holder, 0))
        yield leases
        depth = GaugeMetricFamily(
            "runplane_queue_depth",
            "What waits for a worker: runs started and queued, tool tasks queued, by queue",
            labels=["queue", "what"],
        )
        for what, queues in (("run", m.queued_runs), ("task", m.queued_tasks)):
            for queue, n in sorted(queues.items()):
                depth.add_metric([queue, what], n)
        yield depth


def _bound(bucket: float) -> str:
    return repr(float(bucket))
