"""The store: one SQLite file per experiment, the boundary between the run and the read verbs."""

from runner.store.database import Store
from runner.store.migrations import SCHEMA_VERSION
from runner.store.records import JobRecord, JobRow, JobStatus, Timings, VariantDetails

__all__ = ["SCHEMA_VERSION", "JobRecord", "JobRow", "JobStatus", "Store", "Timings", "VariantDetails"]
