"""`batch --score`: arguments and the post-run scoring of every finished job (identity metrics, local files)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..choices import SCORE_PROTOCOLS


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("identity scores (--score)")
    group.add_argument("--score", action="store_true",
                       help="after the batch, score each video (FaceSim-Arc/Cur, CLIPScore, FID, motion) against its "
                            "face and prompt: added to its results.jsonl line, summary per prompt and face (default: off)")
    group.add_argument("--score-protocol", choices=SCORE_PROTOCOLS, default="fixed", help="default %(default)s")
    group.add_argument("--score-model", type=Path,
                       default=Path(os.environ.get("CONSISID_MODEL", Path("models") / "consisid" / "ConsisID-preview")),
                       help="local ConsisID model folder holding face_encoder/ (IR-101, models/buffalo_l/); default: "
                            "$CONSISID_MODEL, else %(default)s")
    group.add_argument("--score-eval-dir", type=Path, default=None,
                       help="folder with inception_v3_google-0cc3c7bd.pth and clip-vit-base-patch32/ "
                            "(default: models/consisid/eval next to the model folder)")
    group.add_argument("--score-buffalo-l-dir", type=Path, default=None, help="insightface buffalo_l folder, if elsewhere (default: searched beside the model)")
    group.add_argument("--score-device", default="cpu", help="torch device for scoring (default cpu)")


def check_score_files(args: argparse.Namespace) -> None:
    from ..metrics import locate_eval_files

    locate_eval_files(args.score_model, args.score_eval_dir, args.score_buffalo_l_dir)


def score_batch(args: argparse.Namespace, jobs: list, out_dir: str) -> None:
    """Load the scoring models (a missing file stops here with the list of files) and score the batch."""
    from ..batch.scoring import format_summary, score_results
    from ..metrics import load_eval_models

    models = load_eval_models(args.score_model, args.score_eval_dir, args.score_device, args.score_buffalo_l_dir)
    summary = score_results(out_dir, jobs, models, args.score_protocol)
    print(format_summary(summary))
