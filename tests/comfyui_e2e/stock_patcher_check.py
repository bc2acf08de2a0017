"""Our models under a REAL ComfyUI's stock ModelPatcher, in its own interpreter (run by test_stock_patcher.py).

Usage: COMFYUI_PYTHON stock_patcher_check.py COMFYUI_DIR OUT_JSON. On a CPU ComfyUI `load_models_gpu` always loads
fully, so the partial loads here go through the stock `ModelPatcher.partially_load` with a budget (what
`load_models_gpu` calls on a GPU when the model does not fit): layers past the budget are cast on use by
ComfyUI's ops, LoRA patches become its LowVramPatch. Each case compares frames with a full load of the same
model. Prints and writes one JSON object of named results.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

COMFYUI_DIR, OUT = Path(sys.argv[1]), Path(sys.argv[2])
REPO = Path(__file__).resolve().parents[2]
sys.argv = [sys.argv[0], "--cpu"]
sys.path[:0] = [str(COMFYUI_DIR), str(REPO), str(REPO / "tests")]

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()
import comfy.model_management as mm  # noqa: E402
import torch  # noqa: E402

import consisid_core  # noqa: E402
from consisid_core.demo.video_models import write_tiny_model  # noqa: E402
from support.engine_inputs import PROMPT, face_image, identity  # noqa: E402
from support.tiny_lora import write_tiny_lora  # noqa: E402


def _pack_module(name: str):
    """A module of our nodes package, imported under a private package name (ComfyUI has its own `nodes`)."""
    if "consisid_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location("consisid_pack", REPO / "nodes" / "__init__.py",
                                                      submodule_search_locations=[str(REPO / "nodes")])
        package = importlib.util.module_from_spec(spec)
        sys.modules["consisid_pack"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"consisid_pack.{name}")


comfy_memory = _pack_module("comfy_memory")
comfy_ops = _pack_module("comfy_ops")
SETTINGS = dict(height=32, width=48, num_frames=9, num_inference_steps=2, guidance_scale=6.0, seed=3)
results: dict = {}


def frames(engine):
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **SETTINGS)


def managed_engine(folder, weight_dtype="default"):
    from consisid_core.runtime import resolve_runtime

    runtime = resolve_runtime(device="cpu", dtype="fp32", weight_dtype=weight_dtype)
    engine = consisid_core.load_engine(folder, runtime=runtime, managed=True)
    return engine, comfy_memory.manage_engine(engine, "auto")


@contextlib.contextmanager
def gpu_like(budget_fraction: float):
    """`load_models_gpu` as on a GPU whose free memory fits `budget_fraction` of each model: what it does there
    (a listed model gets `model_load` again, a new one is listed after detaching its clones) with that budget."""
    def load_models_gpu(models, memory_required=0, **kwargs):
        for p in models:
            entry = next((e for e in mm.current_loaded_models if e.model is p), None)
            if entry is None:
                for i in range(len(mm.current_loaded_models) - 1, -1, -1):
                    if p.is_clone(mm.current_loaded_models[i].model):
                        old = mm.current_loaded_models.pop(i)
                        old.model.detach(unpatch_all=False)
                        old.model_finalizer.detach()
                entry = mm.LoadedModel(p)
                entry.model_load(int(p.model_size() * budget_fraction))
                mm.current_loaded_models.insert(0, entry)
            else:
                entry.model_load(int(p.model_size() * budget_fraction))

    original = mm.load_models_gpu
    mm.unload_all_models()
    mm.load_models_gpu = load_models_gpu
    try:
        yield
    finally:
        mm.load_models_gpu = original
        mm.unload_all_models()


def lowvram_layers(patcher) -> int:
    return sum(1 for m in patcher.model.modules() if getattr(m, "comfy_cast_weights", False))


def case(name, fn):
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - reported, and the test fails on it
        import traceback

        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    print(name, json.dumps(results[name])[:400], flush=True)


with tempfile.TemporaryDirectory() as tmp:
    folder = write_tiny_model(Path(tmp) / "model")
    engine, patchers = managed_engine(folder)
    lora = write_tiny_lora(engine.transformer, Path(tmp) / "tiny_lora.safetensors")

    def full_vs_partial():
        out = {"uncovered": {k: comfy_ops.uncovered(p.model) for k, p in patchers.base.items()}}
        full = frames(engine)
        out["log_names"] = [type(p.model).__name__ for p in patchers.all()]
        for fraction in (0.1, 0.3):
            with gpu_like(fraction):
                got = frames(engine)
                out[f"lowvram_layers_at_{fraction}"] = lowvram_layers(patchers.base["transformer"])
                out[f"model_lowvram_at_{fraction}"] = bool(patchers.base["transformer"].model.model_lowvram)
            out[f"max_diff_at_{fraction}"] = float((got - full).abs().max())
        return out

    def lora_strength():
        mm.unload_all_models()
        base = frames(engine)
        patchers.use_loras(((str(lora), 1.0),))
        one = frames(engine)
        weights_object = engine.transformer
        patchers.use_loras(((str(lora), 0.5),))
        half = frames(engine)
        with gpu_like(0.3):
            half_partial = frames(engine)
        patchers.use_loras(())
        again = frames(engine)
        reference = consisid_core.load_engine(folder, device="cpu", dtype=torch.float32)  # peft, outside ComfyUI
        reference.load_lora(lora, 1.0)
        peft_one = frames(reference)
        return {"lora_changes_video": float((one - base).abs().max()),
                "strength_changes_video": float((half - one).abs().max()),
                "same_engine": weights_object is engine.transformer,
                "half_partial_vs_half_full": float((half_partial - half).abs().max()),
                "removed_equals_base": float((again - base).abs().max()),
                "comfy_lora_vs_peft_lora": float((one - peft_one).abs().max())}

    def fp8_lora_partial():
        mm.unload_all_models()
        fp8, fp8_patchers = managed_engine(folder, "fp8_e4m3fn")
        full = frames(fp8)
        with gpu_like(0.01):  # every fp8 layer cast on use: LoRA on the dequantised weight (LowVramPatch)
            part = frames(fp8)
            fp8_patchers.use_loras(((str(lora), 0.5),))
            part_lora = frames(fp8)
            fp8_cast = sum(1 for m in fp8_patchers.patcher("transformer").model.modules()
                           if type(m).__name__ == "ComfyFP8Linear" and m.comfy_cast_weights and m.weight_function)
        full_lora = frames(fp8)  # (LoRA merged into the fp8 weights: within fp8 rounding of the partial load)
        from consisid_core.runtime import resolve_runtime

        peft = consisid_core.load_engine(folder, runtime=resolve_runtime(device="cpu", dtype="fp32",
                                                                         weight_dtype="fp8_e4m3fn"))
        peft.load_lora(lora, 0.5)  # the CLI's fp8 + LoRA: an unquantised adapter beside the fp8 weight
        peft_lora = frames(peft)
        fp8_patchers.use_loras(())
        unpatched = frames(fp8)
        return {"fp8_layers_cast_with_lora_patch": fp8_cast,
                "fp8_partial_vs_full": float((part - full).abs().max()),
                "fp8_lora_partial_vs_full": float((part_lora - full_lora).abs().max()),
                "fp8_lora_partial_vs_cli_peft": float((part_lora - peft_lora).abs().max()),
                "fp8_lora_full_vs_cli_peft": float((full_lora - peft_lora).abs().max()),
                "fp8_lora_changes_video": float((full_lora - full).abs().max()),
                "fp8_lora_changes_partial_video": float((part_lora - part).abs().max()),
                "fp8_unpatched_equals_before": float((unpatched - full).abs().max())}

    def free_releases():
        mm.unload_all_models()
        frames(engine)
        listed = [type(e.model.model).__name__ for e in mm.current_loaded_models if e.model is not None]
        mm.unload_all_models()
        left = [type(e.model.model).__name__ for e in mm.current_loaded_models if e.model is not None]
        return {"listed_after_run": listed, "listed_after_free": left}

    case("full_vs_partial", full_vs_partial)
    case("lora_strength", lora_strength)
    case("fp8_lora_partial", fp8_lora_partial)
    case("free_releases", free_releases)

OUT.write_text(json.dumps(results, indent=1))
