"""TeaCache for ConsisID: skip the whole block loop on steps whose timestep embedding barely moved.

The rule is the authors' TeaCache4ConsisID: the signal is the timestep embedding `emb`; each step adds
`poly(mean|emb - emb_prev| / mean|emb_prev|)` to an accumulator and is skipped while the accumulator stays
below the threshold (a computed step resets it). A skipped step adds the cached residual of the *whole*
loop (every block and every face injection) to the patch-embedded video and text tokens, so the face
injections are never applied twice nor dropped. With CFG both branches share one decision (batch 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..choices import TEACACHE_MODES
from ..errors import UnsupportedInputError

# numpy.poly1d order (highest power first), as published for ConsisID (the CogVideoX-5B fit)
COEFFICIENTS = (-1.53880483e03, 8.43202495e02, -1.34363087e02, 7.97131516e00, -5.23162339e-02)


def rescaled_distance(emb: torch.Tensor, previous: torch.Tensor) -> float:
    """poly(relative L1 distance) between two timestep embeddings, computed in their dtype as the reference does."""
    rel = ((emb - previous).abs().mean() / previous.abs().mean()).cpu().item()
    return float(np.polyval(COEFFICIENTS, rel))


@dataclass
class _State:
    """What survives between steps (and, in `reference` mode, between generations)."""

    counter: int = 0
    accumulated: float = 0.0
    previous_emb: torch.Tensor | None = None
    residual: torch.Tensor | None = None
    residual_text: torch.Tensor | None = None


@dataclass
class _Stats:
    computed: int = 0
    skipped: int = 0
    skipped_steps: list[int] = field(default_factory=list)


class TeaCache:
    """Step-caching strategy for `engine.generate(..., cache=TeaCache(0.15))` / `engine.denoise`.

    `threshold`: 0.1 / 0.15 / 0.2 gave 1.6x / 2.1x / 2.7x on an H100 for the authors; 0 turns caching off
    (in `fixed` mode). `mode="fixed"` (default) keeps its state per generation, never skips outside
    `[start_step, end_step)` and can keep the cached residuals on the CPU (`offload`); `mode="reference"`
    replays the published procedure, including its counter and state carried into the next generation.
    """

    def __init__(self, threshold: float, mode: str = "fixed", start_step: int = 0, end_step: int | None = None,
                 offload: bool = False) -> None:
        if mode not in TEACACHE_MODES:
            raise UnsupportedInputError(f"TeaCache mode must be one of {TEACACHE_MODES}; got {mode!r}")
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise UnsupportedInputError(f"TeaCache threshold must be a number such as 0.15; got {threshold!r}") from None
        if not threshold >= 0.0 or threshold > 10.0:  # also refuses NaN
            raise UnsupportedInputError(f"TeaCache threshold must be between 0 and 10 (0.1-0.2 is typical); got {threshold}")
        if int(start_step) < 0 or (end_step is not None and int(end_step) <= int(start_step)):
            raise UnsupportedInputError(
                f"TeaCache start_step must be >= 0 and end_step (when given) greater than it; got {start_step}, {end_step}"
            )
        if mode == "reference" and (int(start_step) != 0 or end_step is not None):
            raise UnsupportedInputError("TeaCache start_step/end_step need mode='fixed' (the reference has no window)")
        self.threshold = threshold
        self.mode = mode
        self.start_step = int(start_step)
        self.end_step = None if end_step is None else int(end_step)
        self.offload = bool(offload)
        self._stats = _Stats()
        self._reference_state = _State()

    @property
    def enabled(self) -> bool:
        return self.mode == "reference" or self.threshold > 0.0

    @property
    def stats(self) -> dict:
        """Of the last generation: {"computed": n, "skipped": m, "skipped_steps": [step indices]}."""
        return {"computed": self._stats.computed, "skipped": self._stats.skipped,
                "skipped_steps": list(self._stats.skipped_steps)}

    def summary(self) -> str:
        """One line for logs: 'TeaCache 0.15: 31 of 50 steps computed, 19 skipped'."""
        s = self._stats
        return f"TeaCache {self.threshold:g}: {s.computed} of {s.computed + s.skipped} steps computed, {s.skipped} skipped"

    def start(self, num_steps: int) -> "TeaCacheRun | None":
        """Begin one generation of `num_steps` steps; None when caching is off (the plain loop runs)."""
        self._stats = _Stats()
        if not self.enabled:
            return None
        if self.mode == "fixed":
            return TeaCacheRun(self, _State(), num_steps)
        return TeaCacheRun(self, self._reference_state, num_steps)

    def __repr__(self) -> str:
        window = "" if (self.start_step, self.end_step) == (0, None) else f", start_step={self.start_step}, end_step={self.end_step}"
        return f"TeaCache({self.threshold:g}, mode={self.mode!r}{window}{', offload=True' if self.offload else ''})"


class TeaCacheRun:
    """One generation's use of a TeaCache; `transformer_forward` asks it once per step."""

    def __init__(self, cache: TeaCache, state: _State, num_steps: int) -> None:
        self.cache = cache
        self.state = state
        self.num_steps = int(num_steps)
        self.step = 0  # index of the step being decided (fixed mode)

    def should_compute(self, emb: torch.Tensor, video_shape: torch.Size, text_shape: torch.Size) -> bool:
        """Decide this step from the timestep embedding; every call is one denoising step."""
        if self.cache.mode == "reference":
            compute = self._reference_rule(emb)
        else:
            compute = self._fixed_rule(emb)
        if not compute and not self._residual_fits(video_shape, text_shape):
            compute = True  # nothing usable cached (reference state from another size): compute instead
        stats, index = self.cache._stats, self.step
        self.step += 1
        if compute:
            stats.computed += 1
        else:
            stats.skipped += 1
            stats.skipped_steps.append(index)
        return compute

    def _fixed_rule(self, emb: torch.Tensor) -> bool:
        state, i, cache = self.state, self.step, self.cache
        end = self.num_steps if cache.end_step is None else min(cache.end_step, self.num_steps)
        if i == 0 or i == self.num_steps - 1 or i < cache.start_step or i >= end or state.previous_emb is None:
            compute = True
            state.accumulated = 0.0
        else:
            state.accumulated += rescaled_distance(emb, state.previous_emb)
            compute = not state.accumulated < cache.threshold  # (a NaN distance computes, as the reference)
            if compute:
                state.accumulated = 0.0
        state.previous_emb = emb
        return compute

    def _reference_rule(self, emb: torch.Tensor) -> bool:
        state, last = self.state, self.num_steps - 1
        if state.counter == 0 or state.counter == last:
            compute = True
            state.accumulated = 0.0
        else:
            state.accumulated += rescaled_distance(emb, state.previous_emb)
            compute = not state.accumulated < self.cache.threshold
            if compute:
                state.accumulated = 0.0
        state.previous_emb = emb
        state.counter += 1
        if state.counter == last:
            state.counter = 0
        return compute

    def _residual_fits(self, video_shape: torch.Size, text_shape: torch.Size) -> bool:
        s = self.state
        return (s.residual is not None and s.residual_text is not None and s.residual.shape == video_shape
                and s.residual_text.shape == text_shape)

    def store(self, residual: torch.Tensor, residual_text: torch.Tensor) -> None:
        """Keep the residual of the whole block loop of a computed step (video and text tokens)."""
        if self.cache.offload:
            residual, residual_text = residual.to("cpu"), residual_text.to("cpu")
        self.state.residual, self.state.residual_text = residual, residual_text

    def apply(self, hidden: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A skipped step: the patch-embedded tokens plus the cached residuals."""
        residual, residual_text = self.state.residual, self.state.residual_text
        return hidden + residual.to(hidden.device), text + residual_text.to(text.device)


def check_cache(cache: object) -> TeaCache | None:
    """The `cache=` argument of generate/denoise: None or a TeaCache, refused clearly otherwise."""
    if cache is None or isinstance(cache, TeaCache):
        return cache
    raise UnsupportedInputError(f"cache must be a consisid_core.TeaCache (or None); got {type(cache).__name__}")
