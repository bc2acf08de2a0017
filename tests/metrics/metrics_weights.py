"""Random weights in the official layouts of the scoring networks (deterministic from a seed)."""

from __future__ import annotations

import numpy as np
import torch


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Plausible random values per key kind: conv/linear weights of variance gain/fan_in (2 = He, which keeps a deep
    ReLU stack from collapsing every input to the same output), BN stats near (0, 1)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
            continue
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean") or key.endswith("bias"):
            value = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:  # BN scale or PReLU slope
            value = rng.uniform(0.2, 1.0, shape) if gain == 1.0 else rng.uniform(0.8, 1.2, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0.0, np.sqrt(gain / fan_in), shape)
        state[key] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    return state


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}
