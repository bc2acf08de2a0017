"""ConsisID LoRA: stack a LoRA on the loaded ConsisID model without reloading it."""

from __future__ import annotations

from pathlib import Path

from comfy_api.v0_0_2 import io
from consisid_core import node_ids

from . import comfy_bridge
from .errors import fail, label, reported_as
from .types import CATEGORY, Sockets

NO_LORAS = "(no LoRA in models/consisid_loras)"


def lora_names() -> list[str]:
    """The .safetensors files of every `consisid_loras` folder (relative names, as ComfyUI lists them)."""
    try:
        names = comfy_bridge.folder_paths().get_filename_list(comfy_bridge.LORA_FOLDER_KEY)
    except (KeyError, ImportError):
        names = []
    return sorted(n for n in names if n.lower().endswith(".safetensors")) or [NO_LORAS]


class LoraModel:
    """The CONSISID_MODEL a LoRA node outputs: the same engine, with this stack of LoRAs put on it when used."""

    def __init__(self, base, lora_stack: tuple) -> None:
        self._root = getattr(base, "_root", base)
        self.lora_stack = tuple(lora_stack)

    def get(self):
        return self._root.get(self.lora_stack)

    def __getattr__(self, name):  # settings, loaded, preview_map, ... of the loader's handle
        return getattr(self._root, name)


class ConsisIDLoRA(io.ComfyNode):
    DISPLAY_NAME = "ConsisID LoRA"
    LABEL = label(DISPLAY_NAME, node_ids.LORA)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.LORA,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Applies a LoRA (diffusers format, e.g. pytorch_lora_weights.safetensors from `python -m consisid_core "
                "train`, or a CogVideoX-5B-I2V LoRA whose layers fit) from models/consisid_loras/ to the ConsisID model. "
                "Chain several LoRA nodes to stack them; the model is not reloaded, and removing the node removes the "
                "LoRA."
            ),
            inputs=[
                Sockets.Model.Input("model", tooltip="From ConsisID DiT Loader or another ConsisID LoRA node."),
                io.Combo.Input("lora_name", options=lora_names(),
                               tooltip="A .safetensors LoRA in ComfyUI/models/consisid_loras/."),
                io.Float.Input("strength", default=1.0, min=-4.0, max=4.0, step=0.05, tooltip=(
                    "How much of the LoRA's change to apply: 0 = none (the model exactly as loaded), 1 = as trained.")),
            ],
            outputs=[Sockets.Model.Output("model", tooltip=(
                "The same ConsisID model with this LoRA (and those before it) applied when sampling."))],
        )

    @classmethod
    def execute(cls, model, lora_name, strength) -> io.NodeOutput:
        with reported_as(cls.LABEL):
            if lora_name == NO_LORAS:
                raise fail(cls.LABEL, "no LoRA file found: put a .safetensors LoRA into ComfyUI/models/consisid_loras/ "
                                      "(a training run writes RUN_DIR/pytorch_lora_weights.safetensors)")
            path = comfy_bridge.folder_paths().get_full_path(comfy_bridge.LORA_FOLDER_KEY, lora_name)
            if path is None or not Path(path).is_file():
                raise fail(cls.LABEL, f"LoRA '{lora_name}' was not found in the consisid_loras folders")
            from consisid_core.engine.lora import check_fits, read_lora

            state, _ = read_lora(path)  # a foreign or broken file is refused here, naming the node
            check_fits(model.get().transformer, state, lora_name)
            stack = tuple(getattr(model, "lora_stack", ())) + ((str(path), float(strength)),)
        return io.NodeOutput(LoraModel(model, stack))
