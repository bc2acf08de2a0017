"""Opt-in download of the ConsisID-preview weights (only what the pack uses), resumable."""

from __future__ import annotations

from pathlib import Path

from .catalog import ALL_FILES, FACE_ENCODER_DIR, HF_REPO
from .errors import ConsisIDError
from .model_folder import COMPONENT_DIRS, MODEL_INDEX

# Whole component folders (their shard names vary between uploads) plus each face file the pack uses.
ALLOW_PATTERNS = [MODEL_INDEX] + [f"{c}/*" for c in COMPONENT_DIRS if c != FACE_ENCODER_DIR] + [
    entry.path for entry in ALL_FILES if entry.component in ("face_encoder", "antelopev2") and entry.required
]


def download_model(destination: str | Path, repo_id: str = HF_REPO) -> Path:
    """Fetch the files the pack needs from Hugging Face into `destination`; reruns resume partial files."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with diffusers
        raise ConsisIDError("huggingface_hub is not installed: pip install huggingface_hub") from exc
    destination = Path(destination).expanduser()
    destination.mkdir(parents=True, exist_ok=True)
    print(f"downloading {repo_id} (~25 GB, only the files this pack uses) into {destination} ...")
    try:
        snapshot_download(repo_id=repo_id, local_dir=str(destination), allow_patterns=ALLOW_PATTERNS)
    except Exception as exc:  # network, auth, offline mode, disk: all end the command the same way
        raise ConsisIDError(
            f"could not download {repo_id} into {destination} ({type(exc).__name__}: {exc}). Check the network "
            f"(HF_HUB_OFFLINE must be unset) and disk space, then run the same command again: finished files are "
            f"kept and partial ones resume."
        ) from exc
    return destination
