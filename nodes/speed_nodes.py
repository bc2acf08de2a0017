"""ConsisID TeaCache: a step-caching setting for the Sampler's optional `cache` input."""

from __future__ import annotations

from comfy_api.v0_0_2 import io
from consisid_core import choices, node_ids
from consisid_core.node_ids import TEACACHE_DEFAULTS as DEFAULTS

from .errors import label, reported_as
from .types import CATEGORY, Sockets


class ConsisIDTeaCache(io.ComfyNode):
    DISPLAY_NAME = "ConsisID TeaCache"
    LABEL = label(DISPLAY_NAME, node_ids.TEACACHE)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.TEACACHE,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Speeds up the Sampler by skipping the transformer on steps whose timestep embedding barely changed "
                "(TeaCache, as the ConsisID authors run it): a skipped step reuses the last computed step's change, "
                "face injections included. The authors measured 1.6x / 2.1x / 2.7x at 0.1 / 0.15 / 0.2 on an H100; "
                "higher thresholds skip more steps and lose more detail. Connect to the Sampler's cache input."
            ),
            inputs=[
                io.Float.Input("threshold", default=DEFAULTS["threshold"], min=0.0, max=1.0, step=0.01, round=0.001,
                               tooltip=(
                    "How much change to accumulate before computing a step again: 0.1 (1.6x), 0.15 (2.1x), "
                    "0.2 (2.7x) on the authors' H100. 0 turns caching off.")),
                io.Combo.Input("mode", options=list(choices.TEACACHE_MODES), default=DEFAULTS["mode"], tooltip=(
                    "fixed: state kept per generation, honours start/end and offload. reference: exactly the "
                    "authors' script, including its counter carried into the next run (re-runs can differ).")),
                io.Int.Input("start_step", default=DEFAULTS["start_step"], min=0, max=1000, tooltip=(
                    "No step before this one is skipped (fixed mode); e.g. 5 keeps the layout-forming early steps "
                    "exact.")),
                io.Int.Input("end_step", default=DEFAULTS["end_step"], min=0, max=1000, tooltip=(
                    "No step from this one on is skipped (fixed mode); 0 = until the end. The last step is always "
                    "computed.")),
                io.Boolean.Input("offload_residuals", default=DEFAULTS["offload_residuals"], tooltip=(
                    "Keep the cached residuals (two video-sized tensors) in CPU memory instead of on the GPU; "
                    "saves about 0.4 GB at 720x480x49 for one copy each way per step.")),
            ],
            outputs=[Sockets.Cache.Output(
                "cache", tooltip="The caching setting, for ConsisID Sampler's optional cache input.")],
        )

    @classmethod
    def execute(cls, threshold, mode, start_step, end_step, offload_residuals) -> io.NodeOutput:
        from consisid_core.engine.teacache import TeaCache

        with reported_as(cls.LABEL):
            cache = TeaCache(float(threshold), mode=mode, start_step=int(start_step),
                             end_step=int(end_step) or None, offload=bool(offload_residuals))
        return io.NodeOutput(cache)
