"""API batch runs against ComfyUI servers: jobs CSV -> patched API workflow -> videos + results.jsonl.

Standard library only (plus tqdm for progress bars): HTTP through urllib, a minimal websocket client.
"""

from .jobs import Job, JobsFileError, load_jobs
from .runner import BatchOptions, BatchSummary, run_batch
from .workflow import WorkflowError, apply_job, load_workflow

__all__ = [
    "Job", "JobsFileError", "load_jobs", "BatchOptions", "BatchSummary", "run_batch",
    "WorkflowError", "apply_job", "load_workflow",
]
