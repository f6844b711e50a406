"""Jobs: long videos answered in the background, durable across restarts (SQLite), with
their uploads spooled to disk. No web framework here; `server.api` serves the routes."""

from .runner import JobLimits, JobRunner
from .schemas import JobList, JobStatus, job_status, status_json
from .spool import Spool
from .store import Job, JobStore

__all__ = [
    "Job",
    "JobLimits",
    "JobList",
    "JobRunner",
    "JobStatus",
    "JobStore",
    "Spool",
    "job_status",
    "status_json",
]
