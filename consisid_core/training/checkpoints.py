"""Checkpoints of a run (trainable weights, optimizer, lr schedule, RNG, data position) and resuming from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..errors import ConsisIDError

STATE = "state.json"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:07d}"


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run (one whose state.json was written last), or None."""
    root = Path(run_dir) / "checkpoints"
    done = sorted(p for p in root.glob("step-*") if (p / STATE).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def save(run_dir: Path, step: int, position: int, trainable: dict[str, torch.Tensor], optimizer, lr_scheduler,
         config: dict, losses: list[float], keep: int = 2) -> Path:
    """Write a checkpoint; state.json goes last, so a checkpoint cut by an interruption is never resumed from."""
    from safetensors.torch import save_file

    folder = checkpoint_dir(run_dir, step)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, str(tmp / "trainable.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "training_state.pt")
    (tmp / STATE).write_text(json.dumps({"step": step, "position": position, "config": config, "losses": losses},
                                        indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    kept = sorted(p for p in folder.parent.glob("step-*") if not p.name.endswith(".tmp"))
    for old in kept[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return folder


class CheckpointError(ConsisIDError):
    """A checkpoint that cannot be resumed from (damaged or cut files)."""


def _damaged(folder: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {folder} is damaged ({why}); delete that folder to resume from the one "
                           "before it, or pass --no-resume to start over")


def read_state(folder: Path) -> dict:
    """The checkpoint's state.json (step, position, config, losses), or a one-line CheckpointError."""
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(folder, f"{STATE} cannot be read: {str(exc).splitlines()[0][:120]}") from None
    ok = isinstance(state, dict) and isinstance(state.get("step"), int) and isinstance(state.get("position"), int) \
        and isinstance(state.get("config"), dict) and isinstance(state.get("losses"), list)
    if not ok:
        raise _damaged(folder, f"{STATE} lacks step, position, config or losses")
    for name in ("trainable.safetensors", "training_state.pt"):
        if not (folder / name).is_file():
            raise _damaged(folder, f"{name} is missing")
    return state


def resumable(run_dir: Path, config: dict) -> Path | None:
    """The checkpoint a resumed run would start from, checked readable and of the same settings before any model
    loads; None if there is none."""
    found = latest(run_dir)
    if found is not None:
        check_same_settings(found, read_state(found), config)
    return found


def check_same_settings(folder: Path, state: dict, config: dict) -> None:
    """A resume continues the same run: only the step count and checkpoint/validation intervals may change."""
    saved = dict(state["config"])
    current = dict(config)
    for key in ("max_steps", "checkpoint_every", "keep_checkpoints", "validate_every"):  # may change on resume
        saved.pop(key, None)
        current.pop(key, None)
    if saved != current:
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ConsisIDError(f"{folder} was written by a run with other settings ({', '.join(diff)}); resume with the "
                            "same settings, or start a new --out folder")


def load(folder: Path, transformer, optimizer, lr_scheduler, config: dict) -> dict:
    """Restore a checkpoint into the live objects; returns its state.json (step, position, losses)."""
    from safetensors.torch import load_file

    state = read_state(folder)
    check_same_settings(folder, state, config)
    try:
        weights = load_file(str(folder / "trainable.safetensors"))
        extra = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - safetensors/pickle raise many kinds for a cut or corrupt file
        raise _damaged(folder, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}") from None
    params = dict(transformer.named_parameters())
    missing = [k for k in weights if k not in params]
    if missing:
        raise ConsisIDError(f"{folder} holds weights this model does not have (e.g. {missing[:2]})")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    optimizer.load_state_dict(extra["optimizer"])
    lr_scheduler.load_state_dict(extra["lr_scheduler"])
    torch.set_rng_state(extra["torch_rng"])
    return state
