"""Identity metrics of the ConsisID paper (FaceSim-Arc, FaceSim-Cur, CLIPScore, face FID) plus motion.

Public API: `load_eval_models`, `score_video`, `score_folder` (with `ScoringJob`), `EvalModels`, `VideoScores`.
"""

from .files import EvalFiles, EvalFilesError, locate_eval_files
from .folder import FolderScores, ScoringJob, make_jobs, read_prompts, score_folder
from .models import EvalModels, load_eval_models
from .protocol import PROTOCOLS
from .score import ReferenceFace, VideoScores, encode_reference, score_video

__all__ = [
    "EvalFiles", "EvalFilesError", "EvalModels", "FolderScores", "PROTOCOLS", "ReferenceFace", "ScoringJob",
    "VideoScores", "encode_reference", "load_eval_models", "locate_eval_files", "make_jobs", "read_prompts",
    "score_folder", "score_video",
]
