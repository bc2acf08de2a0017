"""A random-weight CLIP in the openai/clip-vit-base-patch32 folder layout (tiny by default), built offline.

Moved to consisid_core/demo/metrics_models.py (bench/bench_metrics.py needs it too); re-exported for the tests."""

from consisid_core.demo.metrics_models import PREPROCESSOR, write_clip, write_tokenizer  # noqa: F401
