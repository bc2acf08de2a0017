"""ConsisID LoRA node: lists models/consisid_loras, refuses a LoRA made for another model with one clear message.

(Its effect on the video, strength 0 and stacking are tested end to end with a trained LoRA in
tests/training/test_end_to_end.py.)"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from support.node_graph import nodes_of, tiny_prompt


def test_lora_node_lists_the_folder_and_refuses_a_foreign_file(comfyui):
    from comfy_stub import harness

    folder = comfyui.root / "models" / "consisid_loras"
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "foreign.safetensors"
    save_file({"transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 5)}, str(bad))
    try:
        cls = comfyui.mappings["ConsisIDLoRA"]
        assert cls.INPUT_TYPES()["required"]["lora_name"][1]["options"] == ["foreign.safetensors"]
        prompt = tiny_prompt(steps=2)
        (loader,) = nodes_of(prompt, "ConsisIDModelLoader")
        (sampler,) = nodes_of(prompt, "ConsisIDSampler")
        prompt["900"] = {"class_type": "ConsisIDLoRA",
                         "inputs": {"model": [loader, 0], "lora_name": "foreign.safetensors", "strength": 1.0}}
        prompt[sampler]["inputs"]["model"] = ["900", 0]
        with pytest.raises(harness.NodeFailure, match=r"ConsisID LoRA \(ConsisIDLoRA\).*does not fit"):
            comfyui.run(prompt)
    finally:
        bad.unlink()
    assert comfyui.mappings["ConsisIDLoRA"].INPUT_TYPES()["required"]["lora_name"][1]["options"] == [
        "(no LoRA in models/consisid_loras)"]
