"""Takes on the tiny random model: the kept take is the single run with its seed, shared work runs once,
early pick finishes only `keep` takes, and the preview's clean latents are the scheduler's own."""

from __future__ import annotations

import pytest
import torch

import consisid_core
from consisid_core.takes import TakeRequest, TakeScores, plan_takes, run_takes
from consisid_core.takes.preview import CleanPrediction
from support.engine_inputs import PROMPT, face_image, identity

STEPS = 4
SIZE = dict(height=32, width=48, num_frames=9)


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)


def request(**overrides) -> TakeRequest:
    id_cond, hidden = identity()
    fields = dict(prompt=PROMPT, negative_prompt="ugly", image=face_image(), id_cond=id_cond, id_vit_hidden=hidden,
                  num_inference_steps=STEPS, guidance_scale=6.0, **SIZE)
    fields.update(overrides)
    return TakeRequest(**fields)


def single_run(engine, seed: int) -> torch.Tensor:
    id_cond, hidden = identity()
    return engine.generate(PROMPT, "ugly", image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=seed,
                           num_inference_steps=STEPS, guidance_scale=6.0, **SIZE)


class BrightnessScorer:
    """A stand-in for the metrics: identity = mean brightness of the frames (known, distinct per take), always moving."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple, bool]] = []

    def __call__(self, frames, *, preview: bool = False, frame_gap: float = 1.0) -> TakeScores:
        self.calls.append((tuple(frames.shape), preview))
        value = float(torch.as_tensor(frames).float().mean())
        return TakeScores(value, value, 5.0, None, 1, 1, preview)


def test_kept_take_equals_single_run_with_its_seed(engine):
    scorer = BrightnessScorer()
    result = run_takes(engine, request(), plan_takes(20, 3, STEPS), scorer, keep_takes=True)
    singles = {seed: single_run(engine, seed) for seed in (20, 21, 22)}
    brightness = {seed: float(frames.mean()) for seed, frames in singles.items()}
    expected = max(brightness, key=brightness.get)  # identity = brightness, all moving, no ties on a random model
    assert result.seed == expected
    assert (result.frames - singles[expected]).abs().max().item() == 0.0
    for seed, frames in result.takes.items():  # every kept take too
        assert torch.equal(frames, singles[seed])
    assert [t.seed for t in result.ranking.takes] == sorted(brightness, key=brightness.get, reverse=True)
    assert result.steps_run == 3 * STEPS


def test_without_keep_only_the_winner_frames_are_returned(engine):
    result = run_takes(engine, request(), plan_takes(20, 2, STEPS), BrightnessScorer())
    assert result.takes == {}
    assert torch.equal(result.frames, single_run(engine, result.seed))


def test_shared_work_runs_once_for_all_takes(engine, monkeypatch):
    calls = {"text_encoder": 0, "face_extractor": 0, "vae_encode": 0, "denoise": 0}

    def counting(obj, name, key):
        original = getattr(obj, name)

        def wrapped(*args, **kwargs):
            calls[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(obj, name, wrapped)

    counting(engine.text_encoder, "forward", "text_encoder")
    counting(engine.transformer.local_facial_extractor, "forward", "face_extractor")
    counting(engine.vae, "encode", "vae_encode")
    counting(engine, "denoise", "denoise")
    run_takes(engine, request(), plan_takes(3, 3, STEPS), BrightnessScorer())
    assert calls == {"text_encoder": 2, "face_extractor": 1, "vae_encode": 1, "denoise": 3}  # prompt + negative


def test_early_pick_finishes_only_keep_takes(engine, monkeypatch):
    forwards = []
    embed = engine.transformer.patch_embed
    original = embed.forward
    monkeypatch.setattr(embed, "forward", lambda *a, **k: forwards.append(1) or original(*a, **k))
    scorer = BrightnessScorer()
    plan = plan_takes(30, 3, STEPS, pick_at=0.5, keep=1)
    result = run_takes(engine, request(), plan, scorer)
    assert len(forwards) == 3 * 2 + 1 * STEPS == plan.planned_steps == result.steps_run
    assert [p for _, p in scorer.calls] == [True, True, True, False]  # three previews, one finished take
    preview_best = max(result.preview_scores, key=lambda s: result.preview_scores[s].identity)
    assert result.seed == preview_best
    assert torch.equal(result.frames, single_run(engine, preview_best))
    assert [t.finished for t in result.ranking.takes] == [True, False, False]
    # the preview decodes one image per latent frame the metric looks at (3 latent frames for 9 frames)
    assert scorer.calls[0][0] == (3, 32, 48, 3)


def test_clean_prediction_is_the_schedulers_own(engine, monkeypatch):
    from diffusers import CogVideoXDPMScheduler

    recorded = []
    original = CogVideoXDPMScheduler.step

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        recorded.append(out[1].clone())
        return out

    monkeypatch.setattr(CogVideoXDPMScheduler, "step", step)
    from consisid_core.takes.run import prepare

    req = request()
    shared = prepare(engine, req)
    for at, cfg in ((2, 6.0), (3, 1.0)):
        recorded.clear()
        watcher = CleanPrediction(engine, STEPS, cfg, False, at)
        text = shared.text if cfg > 1 else engine.encode_text(PROMPT, with_negative=False)
        with watcher.watch(engine):
            engine.denoise(text, shared.global_cond, shared.local, num_frames=9, num_inference_steps=STEPS,
                           guidance_scale=cfg, seed=7)
        assert len(recorded) == STEPS
        torch.testing.assert_close(watcher.latents, recorded[at - 1], rtol=1e-5, atol=1e-5)
        assert (watcher.latents - recorded[at]).abs().max() > 1e-3  # and not another step's


def test_single_take_needs_no_scorer_but_several_do(engine):
    from consisid_core.errors import UnsupportedInputError

    result = run_takes(engine, request(), plan_takes(4, 1, STEPS), None)
    assert torch.equal(result.frames, single_run(engine, 4))
    with pytest.raises(UnsupportedInputError, match="scoring models"):
        run_takes(engine, request(), plan_takes(4, 2, STEPS), None)


def test_early_vs_final_watches_without_changing_the_takes(engine):
    from consisid_core.takes.correlation import early_vs_final, spearman

    scorer = BrightnessScorer()
    result = early_vs_final(engine, request(), [5, 6, 7], [0.25, 0.5], scorer)
    assert sorted(result.preview) == [1, 2] and all(len(v) == 3 for v in result.preview.values())
    for seed, final in zip([5, 6, 7], result.final):  # the finished video is the single run's
        assert final.identity == float(single_run(engine, seed).mean())
    assert result.preview[1][0].preview and not result.final[0].preview
    assert "Spearman rank correlation, preview at step 2 (50%) vs final" in result.table()
    assert spearman([1, 2, 3], [10, 20, 30]) == 1.0 and spearman([1, 2, 3], [3, 2, 1]) == -1.0
    assert spearman([1, 2, 2], [1, 2, 3]) == pytest.approx(0.8660254)


def test_takes_compose_with_teacache(engine):
    from consisid_core import TeaCache

    id_cond, hidden = identity()
    cache = TeaCache(0.3)
    result = run_takes(engine, request(cache=cache, num_inference_steps=6), plan_takes(11, 2, 6), BrightnessScorer(),
                       keep_takes=True)
    assert cache.stats["skipped"] > 0, "the takes ran with step caching"
    for seed, frames in result.takes.items():
        single = engine.generate(PROMPT, "ugly", image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=seed,
                                 num_inference_steps=6, guidance_scale=6.0, cache=TeaCache(0.3), **SIZE)
        assert torch.equal(frames, single)


def test_cancel_stops_within_one_step_and_between_takes(engine, monkeypatch):
    from consisid_core.cancel import Cancelled

    steps, stops = [], []

    def cancel_pressed() -> bool:  # Cancel pressed during take 2, step 1
        stop = len(steps) >= STEPS + 1
        stops.append(stop)
        return stop

    monkeypatch.setattr(engine, "should_cancel", cancel_pressed)
    with pytest.raises(Cancelled):
        run_takes(engine, request(), plan_takes(1, 3, STEPS), BrightnessScorer(),
                  callback=lambda step, total, latents: steps.append(step))
    assert steps == [1, 2, 3, 4, 1], "stopped before the next step"
    assert stops.count(True) == 1, "the first stop ended the run (nothing went on to another take)"
    monkeypatch.setattr(engine, "should_cancel", None)
    assert torch.equal(run_takes(engine, request(), plan_takes(1, 1, STEPS), None).frames, single_run(engine, 1))


def test_takes_compose_with_a_lora(engine, tmp_path):
    from support.tiny_lora import write_tiny_lora

    name = engine.load_lora(write_tiny_lora(engine.transformer, tmp_path / "style.safetensors"), 0.8)
    try:
        result = run_takes(engine, request(), plan_takes(31, 2, STEPS), BrightnessScorer(), keep_takes=True)
        for seed, frames in result.takes.items():
            assert torch.equal(frames, single_run(engine, seed)), "the LoRA applies to every take"
    finally:
        engine.unload_lora(name)
    assert not torch.equal(result.takes[31], single_run(engine, 31)), "and it changed the video"
