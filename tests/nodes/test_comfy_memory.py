"""ComfyUI's memory manager is in charge of our models (no monkeypatch of ComfyUI), face models leave the GPU
before sampling, and Cancel stops the decode and face extraction within one unit of work."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from comfy_stub import harness
from support.node_graph import nodes_of, tiny_prompt
from support.pack import pack_module


def _only(prompt: dict, class_type: str) -> str:
    (node,) = nodes_of(prompt, class_type)
    return node


def _listed(mm) -> list:
    """The real models behind ComfyUI's loaded-model list (our containers hold them as `inner`)."""
    models = [entry.model.model for entry in mm.current_loaded_models if entry.model is not None]
    return [getattr(m, "inner", m) for m in models]


def _ours(engine) -> list:
    return [engine.text_encoder, engine.transformer, engine.vae]


def test_our_models_are_in_comfyuis_list_and_free_unloads_them_without_a_monkeypatch(comfyui):
    import comfy.model_management as mm
    import comfy.model_patcher

    original_unload = mm.unload_all_models
    prompt = tiny_prompt(steps=1, attention="sdpa_math")  # settings no other test uses: only this test holds them
    outputs = comfyui.run(prompt).outputs
    handle = outputs[_only(prompt, "ConsisIDModelLoader")][0]
    face_handle = outputs[_only(prompt, "ConsisIDFaceModelsLoader")][0]
    engine = handle.get()
    listed = _listed(mm)
    assert all(any(m is model for m in listed) for model in _ours(engine)), "T5, transformer and VAE are registered"
    assert any(getattr(m, "networks", [None])[-1] is face_handle.get().eva for m in listed), "face models too"
    assert mm.unload_all_models is original_unload, "ComfyUI's functions are left as they are"
    patchers = handle.patchers.all()
    assert all(type(p) is comfy.model_patcher.ModelPatcher for p in patchers), "ComfyUI's own patcher, unchanged"
    names = sorted(type(e.model.model).__name__ for e in mm.current_loaded_models if e.model is not None)
    assert {"T5TextEncoder", "ConsisIDTransformer", "CogVideoXVAE", "ConsisIDFaceModels"} <= set(names)

    unloads = []
    from comfy.patcher_extension import CallbacksMP

    for patcher in patchers:
        patcher.add_callback(CallbacksMP.ON_DETACH, lambda p, unpatch_all, patcher=patcher:
                             unpatch_all and unloads.append(patcher.model.inner))
    comfyui.run(tiny_prompt(steps=1, attention="sdpa_math", seed=8))
    assert unloads == [], "stages do not unload our models (no reload per stage)"

    mm.unload_all_models()  # the "Unload models" button / POST /free
    assert sorted(map(id, unloads)) == sorted(map(id, _ours(engine))), "each unloaded once, through its patcher"
    assert not any(m is model for m in _listed(mm) for model in _ours(engine))
    assert all(p.loaded_size() == 0 for p in patchers)
    loads = handle.loads
    assert handle.get() is engine and handle.loads == loads, "kept in RAM: back without reloading"

    comfyui.run(prompt)  # and the next run loads them again through ComfyUI
    assert all(any(m is model for m in _listed(mm)) for model in _ours(engine))
    mm.unload_all_models()

    # ComfyUI unloaded them, so the registry no longer pins them: dropping the node cache frees their RAM
    del outputs, engine, listed, patchers
    key, handle_ref = handle.settings, weakref.ref(handle)
    del handle, face_handle
    gc.collect()
    assert handle_ref() is None
    assert all(h.settings != key for h in comfyui.registry.handles("engine"))


def test_each_stage_asks_for_its_activation_memory(comfyui, monkeypatch):
    import comfy.model_management as mm

    asked = []
    original = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, memory_required=0, **kw: asked.append(
        ([type(p.model).__name__ for p in models], memory_required)) or original(models, memory_required, **kw))
    comfyui.run(tiny_prompt(steps=1, seed=12))
    by_model = {}
    for names, required in asked:
        for name in names:
            by_model.setdefault(name, []).append(required)
    assert set(by_model) >= {"T5TextEncoder", "ConsisIDTransformer", "CogVideoXVAE"}
    assert all(r > 0 for rs in by_model.values() for r in rs), "every stage passes memory_required"
    assert max(by_model["ConsisIDTransformer"]) > min(by_model["ConsisIDTransformer"]), \
        "the denoising step asks for more than the face-token stage"


def test_another_model_evicts_ours_and_ours_evicts_it(comfyui):
    import comfy.model_management as mm
    import comfy.model_patcher

    prompt = tiny_prompt(steps=1)
    handle = comfyui.run(prompt).outputs[_only(prompt, "ConsisIDModelLoader")][0]
    engine = handle.get()
    t5 = handle.patchers.patcher("text_encoder")
    theirs = comfy.model_patcher.ModelPatcher(torch.nn.Linear(256, 256), torch.device("cpu"), torch.device("cpu"))
    ours_loaded = sum(p.loaded_size() for p in handle.patchers.all())
    assert ours_loaded > 0

    mm.vram_capacity = ours_loaded + theirs.model_size() // 2  # both do not fit
    mm.load_models_gpu([theirs])  # another pack's node loads its model
    assert any(m is theirs.model for m in _listed(mm))
    assert not all(p.loaded_size() for p in handle.patchers.all()), "ComfyUI evicted some of ours for it"

    keep = [entry for entry in mm.current_loaded_models if entry.model is theirs]
    mm.free_memory(1e30, torch.device("cpu"), keep_loaded=keep)  # (the rest of ours leaves too)
    from consisid_core.engine.memory_estimate import text_encode

    need = text_encode(engine.info.text_len, engine.text_encoder.config)
    mm.vram_capacity = t5.model_size() + need + theirs.model_size() // 2  # T5 + its activations fit only alone
    engine.encode_text("a prompt", "")  # our next stage asks ComfyUI for the room it needs (+ its activations)
    assert t5.loaded_size() > 0 and any(m is engine.text_encoder for m in _listed(mm))
    assert theirs.loaded_size() == 0, "ours evicted theirs (ComfyUI unloaded its weights)"
    mm.vram_capacity = None


@pytest.mark.parametrize("mode, offloaded", [("model_offload", True), ("none", False)])
def test_face_models_leave_the_gpu_before_sampling_except_in_mode_none(comfyui, monkeypatch, mode, offloaded):
    events = []
    prompt = tiny_prompt(steps=1, memory_mode=mode)
    monkeypatch.setattr(pack_module("nodes.model_cache").FaceModelsHandle, "offload",
                        lambda self: events.append("faces off"))
    handle = comfyui.run(prompt).outputs[_only(prompt, "ConsisIDModelLoader")][0]
    hook = handle.get().transformer.patch_embed.register_forward_pre_hook(lambda m, a: events.append("step"))
    try:
        comfyui.run(tiny_prompt(steps=1, memory_mode=mode, seed=77))
    finally:
        hook.remove()
    assert ("faces off" in events) == offloaded
    if offloaded:
        assert events.index("faces off") < events.index("step"), "before the first denoising step"


def test_cancel_during_decode_stops_within_one_chunk_and_the_next_run_works(comfyui):
    import comfy.model_management as mm

    prompt = tiny_prompt(steps=1, num_frames=17, vae_tiling=False, seed=3)  # 5 latent frames: 2 decoder chunks
    engine = comfyui.run(prompt).outputs[_only(prompt, "ConsisIDModelLoader")][0].get()
    chunks = []

    def press_cancel(module, args):
        chunks.append(1)
        mm.interrupt_current_processing(True)  # what POST /interrupt does, while the first chunk starts

    hook = engine.vae.decoder.register_forward_pre_hook(press_cancel)
    try:
        with pytest.raises(harness.NodeFailure) as failure:
            comfyui.run(tiny_prompt(steps=1, num_frames=17, vae_tiling=False, seed=4))
    finally:
        hook.remove()
    assert failure.value.node_id == _only(prompt, "ConsisIDDecode")
    assert isinstance(failure.value.exception, mm.InterruptProcessingException)
    assert chunks == [1], "no further chunk ran after Cancel"
    frames = comfyui.run(prompt).outputs[_only(prompt, "ConsisIDDecode")][0]
    assert frames.shape[0] == 17


def test_cancel_during_face_extraction_stops_before_the_next_model(comfyui, monkeypatch):
    import comfy.model_management as mm

    prompt = tiny_prompt(steps=1, face_selection="central")
    loader = comfyui.mappings["ConsisIDFaceModelsLoader"]
    inputs = prompt[_only(prompt, "ConsisIDFaceModelsLoader")]["inputs"]
    (face_handle,) = loader.execute(**inputs)
    models = face_handle.get()
    eva_calls = []
    hook = models.eva.register_forward_pre_hook(lambda m, a: eva_calls.append(1))
    detect = models.landmarker.detect

    def detect_then_cancel(bgr):
        mm.interrupt_current_processing(True)
        return detect(bgr)

    arcface_calls = []
    for method in ("embed", "embed_aligned"):
        original = getattr(models.recognizer, method)
        monkeypatch.setattr(models.recognizer, method, lambda *a, original=original: arcface_calls.append(1) or original(*a))
    monkeypatch.setattr(models.landmarker, "detect", detect_then_cancel)
    try:
        with pytest.raises(harness.NodeFailure) as failure:
            comfyui.run(prompt)
        assert isinstance(failure.value.exception, mm.InterruptProcessingException)
        assert failure.value.class_type in ("ConsisIDFaceCropAlign", "ConsisIDLocalExtractor")
        assert arcface_calls == [] and eva_calls == [], "no further model ran after Cancel"
        monkeypatch.undo()
        frames = comfyui.run(prompt).outputs[_only(prompt, "ConsisIDDecode")][0]
        assert frames.shape[0] == 9 and eva_calls, "the face models work again"
    finally:
        hook.remove()
