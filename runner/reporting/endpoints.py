"""The report's table per endpoint, for a pool of servers (`backend.endpoints`): who answered how fast, who failed.

Each stored job names the endpoint that answered it (or failed it) in its timings. The table counts
jobs, not items: which endpoint gets a job is the pool's choice (the least busy one), so this is a
table about the servers, not about the model, and it says so in its note.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from runner.analysis.results import ResultSet
from runner.analysis.stats import wilson_interval
from runner.reporting.tables import Record, Table

METRICS = ["jobs", "ok", "failed", "failure_rate", "latency_mean_s", "latency_p50_s", "latency_p95_s"]


def endpoint_table(results: ResultSet) -> Table | None:
    """One row per endpoint that answered or failed a job of this report; None for a single server."""
    latencies: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"ok": 0, "failed": 0})
    for cell in results.cells:
        for result in cell.results:
            record = result.record
            endpoint = (record.timings or {}).get("endpoint") if record is not None else None
            if record is None or not isinstance(endpoint, str):
                continue
            counts[endpoint][record.status] = counts[endpoint].get(record.status, 0) + 1
            if record.status == "ok" and record.latency_s is not None:
                latencies[endpoint].append(record.latency_s)
    if not counts:
        return None
    order = [str(e) for e in getattr(results.plan.experiment.backend, "endpoints", None) or []]
    names = [e.rstrip("/") for e in order if e.rstrip("/") in counts] + sorted(set(counts) - {e.rstrip("/")
                                                                                            for e in order})
    table = Table(title=f"{results.plan.experiment.name} — per endpoint",
                  headers=["endpoint", "jobs", "ok", "failed", "failure rate [95% CI]", "latency mean s",
                           "p50 s", "p95 s"],
                  rows=[], metrics=list(METRICS))
    for name in names:
        ok, failed = counts[name]["ok"], counts[name]["failed"]
        jobs = ok + failed
        low, high = wilson_interval(failed, jobs)
        values = np.array(latencies[name], dtype=float)
        mean, p50, p95 = ((float(values.mean()), float(np.percentile(values, 50)), float(np.percentile(values, 95)))
                          if values.size else (None, None, None))
        metrics: dict[str, Any] = {"jobs": jobs, "ok": ok, "failed": failed,
                                   "failure_rate": {"value": failed / jobs, "low": low, "high": high, "n_jobs": jobs},
                                   "latency_mean_s": mean, "latency_p50_s": p50, "latency_p95_s": p95}
        table.records.append(Record(row={"endpoint": name}, column={}, metrics=metrics))
        table.rows.append([name, jobs, ok, failed, f"{failed / jobs:.2f} [{low:.2f}, {high:.2f}]",
                           *(f"{v:.3f}" if v is not None else "-" for v in (mean, p50, p95))])
    table.notes.append("per endpoint, over jobs (not items): the pool sends each job to the least busy endpoint, "
                       "so this compares the servers, not the model; a failed job counts against the endpoint "
                       "it last went to")
    return table
