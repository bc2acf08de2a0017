"""ComfyUI's memory manager logs a model by its class name ("Requested to load <name>", model_management.py):
the parallel workers' placeholder is named for what it is, not torch's "Module"."""

from __future__ import annotations

from support.pack import pack_module


def test_parallel_workers_are_logged_by_a_name_that_says_what_they_are(comfyui):
    patcher = pack_module("nodes.parallel_node").workers_patcher("cpu", 1024)
    name = type(patcher.model).__name__  # what ComfyUI 0.8 logs: LoadedModel.model.model.__class__.__name__
    assert name not in ("Module", "ModuleList", "Sequential") and not name.startswith("_"), name
    assert "Worker" in name and "ConsisID" in name, name
