"""API batch runs against ComfyUI servers: jobs CSV -> patched API workflow -> videos + results.jsonl.

Standard library only (plus tqdm for progress bars): HTTP through urllib, a minimal websocket client.
jobs/csv_text read the CSV; journal keeps results.jsonl and decides what a rerun does; worker talks to one
server; scheduler runs the workers; progress shows the bars.
"""

from .jobs import Job, JobsFileError, load_jobs
from .options import BatchOptions, BatchSummary
from .scheduler import run_batch
from .workflow import WorkflowError, apply_job, load_workflow

__all__ = [
    "Job", "JobsFileError", "load_jobs", "BatchOptions", "BatchSummary", "run_batch",
    "WorkflowError", "apply_job", "load_workflow",
]
