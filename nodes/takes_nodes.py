"""ConsisID Takes (several seeds of one request, decoded) and ConsisID Pick Take (rank them, keep the best)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from comfy_api.v0_0_2 import io

from consisid_core import choices, node_ids
from consisid_core.takes import plan as takes_plan
from consisid_core.takes.rank import IDENTITY_TIE, MOTION_FLOOR

from . import comfy_bridge, sizes
from .errors import fail, label, reported_as
from .metrics_nodes import PROTOCOLS, _save_preview
from .model_cache import REGISTRY
from .sampling_nodes import sampler_inputs
from .types import CATEGORY, Sockets

_log = logging.getLogger("ConsisID")


@dataclass
class Takes:
    """CONSISID_TAKES: each finished take's frames by seed (request order), early-pick previews, the prompt."""

    frames: dict[int, Any]
    prompt: str = ""
    preview_scores: dict = field(default_factory=dict)  # seed -> TakeScores of takes stopped at the early pick
    pick_step: int | None = None
    steps: int = 0


def _reference(image):
    return image[0] if getattr(image, "ndim", 0) == 4 else image


def _send_text(node_id, text: str) -> None:
    """Show `text` on the node (ComfyUI's progress text), and log it."""
    _log.info("ConsisID Takes: %s", text)
    if node_id is None:
        return
    try:
        import server

        server.PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # older ComfyUI or the test stand-in: the log line is enough
        pass


def _like_sampler(*names: str, **tooltips: str) -> list[io.Input]:
    """ConsisID Sampler's inputs of these names (same types and ranges: one definition), tooltips replaced."""
    spec = sampler_inputs()
    out = [spec[name] for name in names]
    for name, tip in tooltips.items():
        out.append(copy.copy(spec[name]))
        out[-1].tooltip = tip
    return out


class ConsisIDTakes(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Takes"
    LABEL = label(DISPLAY_NAME, node_ids.TAKES)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.TAKES,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Makes several takes of one video (seeds seed, seed+1, ...) and decodes them, for ConsisID Pick Take. "
                "The prompt, the encoded face and the identity tokens are made once and shared; each take is exactly "
                "what ConsisID Sampler + Decode give with its seed, so N takes cost N times one video (less with "
                "TeaCache or early pick). Connect eval_models and reference to check the photo's face before sampling "
                "and to pick early: every take runs to pick_at of the steps, a preview is scored and only the best "
                "`keep` finish."
            ),
            inputs=[
                *_like_sampler(
                    "model", "text", "global_cond", "local_cond",
                    seed="Seed of the first take; the others use seed+1, seed+2, ...",
                ),
                io.Int.Input("takes", default=3, min=1, max=takes_plan.MAX_TAKES, tooltip=(
                    f"How many takes (1 to {takes_plan.MAX_TAKES}); each one costs a whole video's time.")),
                *_like_sampler(
                    steps="Denoising steps of every take.",
                    cfg="Classifier-free guidance scale, as on ConsisID Sampler.",
                    use_dynamic_cfg="CogVideoX's cosine guidance schedule.",
                    width="Video width (720 for ConsisID-preview).",
                    height="Video height (480 for ConsisID-preview).",
                    num_frames="Frames of every take: 8k+1 (49 as the model was trained).",
                ),
                io.Boolean.Input("vae_tiling", default=True, tooltip=(
                    "Decode every take in tiles (a few GB instead of about 20 GB at 720x480), as ConsisID Decode.")),
                io.Combo.Input("noise_device", options=list(choices.NOISE_DEVICES), default="cpu", optional=True,
                               tooltip=(
                    "Where each take's noise is drawn: cpu (the same noise for a seed on every machine) or gpu (the "
                    "original code's torch.Generator(\"cuda\")), as on ConsisID Sampler.")),
                Sockets.Cache.Input("cache", optional=True, tooltip=(
                    "Optional step caching from ConsisID TeaCache, applied to every take.")),
                Sockets.EvalModels.Input("eval_models", optional=True, tooltip=(
                    "From ConsisID Eval Models Loader: checks the reference face before sampling; needed to pick "
                    "early.")),
                io.Image.Input("reference", optional=True, tooltip="The photo of the person (as for ConsisID Pick Take)."),
                io.Float.Input("pick_at", default=0.0, min=0.0, max=0.95, step=0.05, optional=True, tooltip=(
                    "Early pick: stop every take at this fraction of the steps, score a preview of it and finish only "
                    "the best `keep`; 0 = off. How well a preview predicts the final score is not measured on the "
                    "real weights yet.")),
                io.Int.Input("keep", default=1, min=1, max=takes_plan.MAX_TAKES - 1, optional=True, tooltip=(
                    "With early pick: how many takes are finished.")),
            ],
            outputs=[Sockets.Takes.Output("takes", tooltip="The decoded takes, for ConsisID Pick Take.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text, global_cond, local_cond, seed, takes, steps, cfg, use_dynamic_cfg, width, height,
                num_frames, vae_tiling, noise_device="cpu", cache=None, eval_models=None, reference=None, pick_at=0.0,
                keep=1) -> io.NodeOutput:
        from consisid_core.takes import TakeRequest, TakeScorer
        from consisid_core.takes.run import Shared, sample_takes

        unique_id = cls.hidden.unique_id  # the node's id on the canvas, for its progress text
        with reported_as(cls.LABEL):  # every check before any sampling
            problem = sizes.check(width, height, num_frames, infos={})
            if problem is not None:
                raise fail(cls.LABEL, problem)
            early = float(pick_at) > 0.0
            plan = takes_plan.plan_takes(int(seed), int(takes), int(steps), pick_at=pick_at if early else None,
                                         keep=int(keep))
            if early and (eval_models is None or reference is None):
                raise fail(cls.LABEL, "early pick (pick_at > 0) needs eval_models and reference connected.")
            prompt = getattr(text.conditioning, "prompt", "") or ""
            scorer = None
            if eval_models is not None and reference is not None:  # a photo without a face stops here
                scorer = TakeScorer(eval_models, _reference(reference), prompt)
            engine = model.get()
            frames = engine.check_settings(height, width, num_frames, snap_frames=False)
            if engine.placement.mode != "none":
                REGISTRY.offload_faces()
            conditioning = global_cond.conditioning
            if global_cond.encoded_by != model.settings or (conditioning.height, conditioning.width) != (height, width):
                conditioning = engine.encode_global(global_cond.face_image, global_cond.landmark_image, height, width)
            local = engine.encode_local(local_cond.id_cond, local_cond.id_vit_hidden, local_cond.face_scale)
            shared = Shared(text.conditioning, conditioning, local, frames)
            request = TakeRequest(prompt, num_frames=frames, height=height, width=width, image=global_cond.face_image,
                                  num_inference_steps=int(steps), guidance_scale=float(cfg),
                                  use_dynamic_cfg=bool(use_dynamic_cfg), noise_device=noise_device, cache=cache,
                                  vae_tiling=bool(vae_tiling))
            total = plan.planned_steps
            bar = comfy_bridge.progress_bar(total)
            done = {"before": 0, "step": 0}

            def on_take(event) -> None:
                done["before"] += done["step"]
                done["step"] = 0
                what = {"preview": f"preview to step {event.steps}", "finish": "finishing"}.get(event.phase, "")
                _send_text(unique_id, f"take {event.index + 1} of {event.count} (seed {event.seed}) {what}".strip())

            def callback(step: int, steps_total: int, latents) -> None:
                done["step"] = step
                bar.update_absolute(done["before"] + step, total)

            sampled = sample_takes(engine, request, plan, scorer, on_take=on_take, callback=callback, shared=shared)
            if cache is not None:
                _log.info("%s: %s", cls.LABEL, cache.summary())
        return io.NodeOutput(Takes(sampled.frames, prompt, sampled.preview_scores, plan.pick_step, plan.steps))


class ConsisIDPickTake(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Pick Take"
    LABEL = label(DISPLAY_NAME, node_ids.PICK_TAKE)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.PICK_TAKE,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Ranks the takes from ConsisID Takes against the reference photo with the paper's identity scores and "
                "keeps the best: identity = mean of FaceSim-Arc and FaceSim-Cur, a take that moves less than the "
                "motion floor cannot win, and CLIPScore breaks ties (identities within 0.005). Outputs the kept "
                "take's frames and seed, the ranking as text and a plot of every take's scores."
            ),
            inputs=[
                Sockets.EvalModels.Input("eval_models", tooltip="From ConsisID Eval Models Loader."),
                Sockets.Takes.Input("takes", tooltip="From ConsisID Takes."),
                io.Image.Input("reference", tooltip="The photo of the person (the first image if a batch is given)."),
                io.Combo.Input("protocol", options=PROTOCOLS, default="fixed", tooltip=(
                    "fixed: RGB frames to CLIP. consisid: exactly the paper's scripts (BGR frames to CLIP).")),
                io.Float.Input("motion_floor", default=MOTION_FLOOR, min=0.0, max=50.0, step=0.05, tooltip=(
                    "Takes whose mean optical flow is below this (pixels per frame) rank after every take that "
                    "moves, so a near-static face cannot win. Not calibrated on real videos yet.")),
                io.String.Input("prompt", default="", multiline=True, optional=True, tooltip=(
                    "For CLIPScore, the tie-break; empty: the prompt the takes were made with (if known).")),
            ],
            outputs=[
                io.Image.Output("frames", tooltip=(
                    "The kept take's frames, exactly what ConsisID Sampler + Decode give with its seed.")),
                io.Int.Output("seed", tooltip=(
                    "The kept take's seed (give it to ConsisID Sampler to make the same video again).")),
                io.String.Output("ranking", tooltip="Every take's scores, best first, and why the kept one won."),
                io.Image.Output("plot", tooltip="FaceSim-Arc/Cur bars per take, the kept take framed in green."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, eval_models, takes, reference, protocol, motion_floor, prompt="") -> io.NodeOutput:
        import torch

        from consisid_core.takes import TakeScorer, format_ranking, rank_takes
        from consisid_core.takes.plot import takes_plot

        with reported_as(cls.LABEL):
            if eval_models is None:
                raise fail(cls.LABEL, "connect a ConsisID Eval Models Loader to eval_models.")
            if not isinstance(takes, Takes) or not takes.frames:
                raise fail(cls.LABEL, "connect the takes output of ConsisID Takes.")
            text = prompt if prompt and prompt.strip() else takes.prompt
            scorer = TakeScorer(eval_models, _reference(reference), text, protocol)
            seeds = list(takes.frames) + [s for s in takes.preview_scores if s not in takes.frames]
            scores = []
            for seed in seeds:
                comfy_bridge.throw_if_interrupted()
                scores.append(scorer(takes.frames[seed]) if seed in takes.frames else takes.preview_scores[seed])
            ranking = rank_takes(seeds, scores, motion_floor=float(motion_floor), identity_tie=IDENTITY_TIE,
                                 finished=[s in takes.frames for s in seeds])
            report = format_ranking(ranking)
            plot = takes_plot(ranking, f"{len(seeds)} takes: kept seed {ranking.winner.seed}")
        image = torch.from_numpy(plot.astype(np.float32) / 255.0).unsqueeze(0)
        ui = {"text": [report]}
        preview = _save_preview(plot)
        if preview is not None:
            ui["images"] = [preview]
        best = ranking.winner.seed
        return io.NodeOutput(takes.frames[best], int(best), report, image, ui=ui)

