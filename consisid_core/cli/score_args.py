"""`batch --score`: the arguments (the scoring itself is consisid_core.batch.scoring)."""

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

