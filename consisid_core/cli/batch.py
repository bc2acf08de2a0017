"""`batch`: run a CSV of face photos x prompts through one or more ComfyUI servers (API mode)."""

from __future__ import annotations

import argparse
import os

from ..batch import BatchOptions, load_jobs, load_workflow, run_batch
from ..batch.parallel import parse_layout, with_parallel_workers
from ..batch.scheduler import check_options

# a copy of the pack's workflows/api/ installed with the package, so `batch` works after `pip install .` too
WORKFLOWS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "workflows")
DEFAULT_WORKFLOW = os.path.join(WORKFLOWS_DIR, "consisid_basic_api.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `consisid batch`."""
    parser.add_argument("--server", default="http://127.0.0.1:8188",
                        help="ComfyUI base URL; user:password@ in it is sent as HTTP Basic auth and never printed "
                             "(default %(default)s)")
    parser.add_argument("--servers", default=None,
                        help="comma-separated ComfyUI URLs, one job in flight per server (default: --server alone)")
    parser.add_argument("--jobs", required=True,
                        help="CSV with columns face,prompt[,negative_prompt,seed,job,<overrides>...] (required)")
    parser.add_argument("--out", required=True, help="output folder: videos and results.jsonl (required)")
    parser.add_argument("--workflow", default=DEFAULT_WORKFLOW,
                        help="API-format workflow; the pack's others are in the same folder as the default "
                             "(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds one job may take, above 0 (default %(default)s)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run again the jobs that failed in an earlier run (default: keep them as failed)")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain log lines instead of progress bars (default: progress bars)")
    from .score_args import add_score_arguments  # batch --score (identity metrics of every video)

    add_score_arguments(parser)
    from ..batch.takes import add_takes_arguments  # batch --takes N (several seeds per row, the best kept)

    add_takes_arguments(parser)
    parser.add_argument("--parallel", default=None, metavar="LAYOUT",
                        help="each server renders on a group of GPUs: cfg, ulysses=K, ring=R comma-separated "
                             "(e.g. cfg or cfg,ulysses=2); adds a ConsisID Parallel Workers node to the workflow "
                             "(default: one GPU per server)")


def run(args: argparse.Namespace) -> int:
    """Run the batch; exit code 0 when every job has a video, 1 when some failed."""
    servers = [s.strip() for s in (args.servers or args.server).split(",") if s.strip()]
    options = BatchOptions(
        servers=servers,
        workflow={},
        out_dir=os.path.abspath(args.out),
        timeout=args.timeout,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
    )
    check_options(options)  # servers, timeout, --out: before reading anything else
    layout = parse_layout(args.parallel) if args.parallel else None  # a bad layout is refused before any work
    options.workflow = load_workflow(args.workflow)
    if layout is not None:
        options.workflow = with_parallel_workers(options.workflow, layout)
    jobs = load_jobs(args.jobs)
    from ..batch.takes import takes_for_batch

    takes = takes_for_batch(args, jobs, options.workflow)  # --takes N: checked now; None without it
    if args.score:  # missing scoring files stop the run before any video is made
        from ..batch.scoring import check_score_files

        check_score_files(args)
    summary = run_batch(jobs if takes is None else takes.jobs, options)
    if takes is not None:  # score every take, keep each row's best (results.jsonl)
        takes.pick_with_args(args, options.out_dir)
    if args.score:
        from ..batch.scoring import score_batch

        score_batch(args, jobs, options.out_dir)
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.errors} errors, "
        f"{summary.skipped} skipped (done earlier, {summary.earlier_failures} of them failed), "
        f"{summary.rerendered} rendered again (settings changed); "
        f"results in {summary.results_path}"
    )
    return 0 if summary.failed == 0 and summary.errors == 0 and summary.earlier_failures == 0 else 1
