"""Fine-tuning ConsisID on a user's own clips: data preparation, the paper's recipe, LoRA or full training.

Nothing here imports ComfyUI. Entry points: `prepare_dataset` (prepare.py), `train` (trainer.py); the
command line is `python -m consisid_core prepare-data` / `train`.
"""
