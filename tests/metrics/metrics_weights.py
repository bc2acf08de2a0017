"""Random weights in the official layouts of the scoring networks (deterministic from a seed).

Moved to consisid_core/demo/metrics_models.py (bench/bench_metrics.py needs them too); re-exported for the tests."""

from consisid_core.demo.metrics_models import random_state, shapes_of  # noqa: F401
