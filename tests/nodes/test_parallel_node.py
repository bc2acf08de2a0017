"""ConsisID Parallel Workers in the canvas stand-in: the Sampler's denoising on two CPU worker processes (gloo)
equals the single-process graph; progress, Cancel (all ranks stop at the same step, the group stays usable) and
release (what /free does). One worker group is started for the whole module (tens of seconds on 2 cores).
On a GPU machine (ComfyUI's device cuda:0, fake worker groups): the group's patcher sits on that device, sized
like a rank's transformer, carries the loader's settings and LoRA chain, and ComfyUI's unload stops it."""

from __future__ import annotations

import pytest
import torch

from consisid_core.cancel import Cancelled
from consisid_core.errors import ConsisIDError
from support.engine_inputs import PROMPT, face_image, identity
from support.node_graph import nodes_of, tiny_prompt
from support.pack import pack_module

pytestmark = pytest.mark.slow
WORKERS = "90"


def _frames(comfyui, prompt) -> torch.Tensor:
    result = comfyui.run(prompt)
    return result.outputs[nodes_of(prompt, "ConsisIDDecode")[0]][0]


def _with_workers(prompt: dict) -> dict:
    loader = nodes_of(prompt, "ConsisIDModelLoader")[0]
    prompt[WORKERS] = {"class_type": "ConsisIDParallelWorkers",
                       "inputs": {"model": [loader, 0], "cfg_parallel": True, "ulysses": 1, "ring": 1}}
    prompt[nodes_of(prompt, "ConsisIDSampler")[0]]["inputs"]["parallel"] = [WORKERS, 0]
    return prompt


def test_sampler_on_parallel_workers_equals_one_process(comfyui):
    single = _frames(comfyui, tiny_prompt(seed=11, steps=3, vae_tiling=False))
    parallel = _frames(comfyui, _with_workers(tiny_prompt(seed=11, steps=3, vae_tiling=False)))
    diff = (parallel - single).abs().max().item()
    print(f"canvas graph on 2 CFG-parallel workers vs one process: max |frame difference| {diff:.2e}")
    assert diff <= 1e-4
    module = pack_module("nodes.parallel_node")
    assert len(module._POOLS) == 1  # kept alive for the next run
    import comfy.model_management as mm

    assert any(m.model is module._PATCHERS[0] for m in mm.current_loaded_models), "in ComfyUI's loaded-model list"


def _conditioning(engine):
    lfe = engine.transformer.local_facial_extractor
    id_cond, hidden = identity(id_dim=lfe.id_embedding_mapping[0].in_features,
                               vit_dim=engine.transformer.config.LFE_vit_dim)
    text = engine.encode_text(PROMPT, "ugly", with_negative=True)
    return text, engine.encode_global(face_image(), height=32, width=48), engine.encode_local(id_cond, hidden)


def test_progress_cancel_and_recovery(comfyui):
    (pool,) = pack_module("nodes.parallel_node")._POOLS.values()
    engine = comfyui.registry.handles("engine")[0].get()
    text, global_cond, local = _conditioning(engine)
    settings = dict(num_frames=9, num_inference_steps=4, guidance_scale=6.0, seed=3)
    want = engine.denoise(text, global_cond, local, **settings).latents
    seen: list = []
    got = pool.denoise(text, global_cond, local, progress=lambda s, t: seen.append((s, t)), **settings)
    assert (got.latents - want).abs().max().item() <= 1e-5
    assert seen == [(i, 4) for i in range(1, 5)]

    steps: list = []
    with pytest.raises(Cancelled):
        pool.denoise(text, global_cond, local, progress=lambda s, t: steps.append(s), should_cancel=lambda: bool(steps),
                     **{**settings, "num_inference_steps": 200})
    assert 1 <= len(steps) < 200  # stopped within the run

    def interrupted(step, total):  # ComfyUI's progress bar raises on Cancel
        raise KeyboardInterrupt("Processing interrupted")

    with pytest.raises(KeyboardInterrupt):
        pool.denoise(text, global_cond, local, progress=interrupted, **{**settings, "num_inference_steps": 200})
    again = pool.denoise(text, global_cond, local, **settings)  # every rank stopped at the same step
    assert (again.latents - want).abs().max().item() <= 1e-5

    from consisid_core import TeaCache

    cache = TeaCache(0.3)
    pool.denoise(text, global_cond, local, cache=cache, **settings)
    assert cache.stats["computed"] + cache.stats["skipped"] == 4 and cache.stats["skipped"] > 0  # counts come back


def test_comfyuis_unload_stops_the_workers(comfyui):
    import comfy.model_management as mm

    module = pack_module("nodes.parallel_node")
    ((settings, config), pool) = next(iter(module._POOLS.items()))
    assert module.ParallelWorkers(settings, config, "cpu").pool() is pool  # the live group, listed in this server
    mm.unload_all_models()  # the "Unload models" button / POST /free
    assert not pool.alive and not module._POOLS
    with pytest.raises(ConsisIDError, match="load them again"):
        pool.denoise(None, None, None, num_inference_steps=2)


# ---- on a GPU machine (ComfyUI's device cuda:0), without starting processes: the group's place in ComfyUI ----
class _FakePool:
    """Stands in for ParallelPool: records what the node starts it with and whether it was stopped."""

    started: list = []

    def __init__(self, model_path, config, device="cuda", runtime=None, first_device=0, **_):
        self.config, self.device, self.runtime, self.first_device = config, device, runtime, first_device
        self.alive, self.loras = True, ()
        _FakePool.started.append(self)

    def close(self, grace=10.0):
        self.alive = False


def _transformer_bytes(folder, weight_dtype: str) -> int:
    """The bytes of the transformer a worker really holds (loaded here, fp32)."""
    import consisid_core
    from consisid_core.runtime.offload import module_bytes

    engine = consisid_core.load_engine(folder, device="cpu", dtype=torch.float32, weight_dtype=weight_dtype)
    return module_bytes(engine.transformer)


@pytest.fixture
def on_gpu(comfyui, monkeypatch):
    """ComfyUI's device is cuda:0 (as on a GPU machine); worker groups are fakes; everything stopped after."""
    import comfy.model_management as mm
    from consisid_core.parallel import pool as pool_module

    module = pack_module("nodes.parallel_node")
    module.release_pools()
    monkeypatch.setattr(mm, "get_torch_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(pool_module, "ParallelPool", _FakePool)
    _FakePool.started = []
    yield module, mm
    mm.vram_capacity = None
    mm.unload_all_models()
    module.release_pools()


def _model(comfyui, lora_stack=(), **settings):
    from types import SimpleNamespace

    from support.node_graph import MODEL_NAME

    from consisid_core.runtime import RuntimeSetting

    fields = dict(device=torch.device("cuda", 0), dtype=torch.float32, face_dtype=torch.float32, attention="sdpa",
                  memory_mode="none", **settings)  # as a DiT Loader with memory_mode "auto" on a GPU resolves it
    engine_settings = pack_module("nodes.model_cache").EngineSettings(
        str(comfyui.root / "models" / "consisid" / MODEL_NAME), RuntimeSetting(**fields), comfy_managed=True)
    return SimpleNamespace(settings=engine_settings, lora_stack=tuple(lora_stack))


@pytest.mark.parametrize("weight_dtype", ["default", "fp8_e4m3fn"])
def test_group_patcher_is_on_comfyuis_gpu_sized_like_a_rank_and_carries_the_model_settings(on_gpu, comfyui,
                                                                                           weight_dtype):
    module, mm = on_gpu
    lora = (str(comfyui.root / "style.safetensors"), 0.7)
    model = _model(comfyui, [lora], weight_dtype=weight_dtype, compile="blocks")
    (workers,) = module.ConsisIDParallelWorkers.execute(model, True, 1, 1)
    pool = workers.pool()
    patcher = module._PATCHERS[0]
    real = _transformer_bytes(model.settings.path, weight_dtype)
    print(f"{weight_dtype}: patcher size {patcher.model_size()} bytes, a worker's transformer {real} bytes")
    assert patcher.load_device == torch.device("cuda", 0) and pool.device == "cuda" and pool.first_device == 0
    assert abs(patcher.model_size() - real) <= 0.02 * real
    assert any(e.model is patcher and e.device == torch.device("cuda", 0) for e in mm.current_loaded_models)
    assert pool.runtime["weight_dtype"] == weight_dtype and pool.runtime["compile"] == "blocks"
    assert pool.runtime["dtype"] == "fp32" and pool.runtime["memory_mode"] == "none"
    assert pool.loras == (lora,)
    assert workers.pool() is pool and pool.alive  # re-listed in ComfyUI on each use, not stopped by that


def test_comfyuis_unload_and_vram_pressure_on_the_gpu_stop_the_workers(on_gpu, comfyui):
    import comfy.model_patcher

    module, mm = on_gpu
    (workers,) = module.ConsisIDParallelWorkers.execute(_model(comfyui), True, 1, 1)
    first = workers.pool()
    mm.unload_all_models()  # "Unload models" / POST /free on a GPU machine: free_memory(1e30, cuda:0)
    assert not first.alive and not module._POOLS and not module._PATCHERS

    second = workers.pool()
    assert second is not first and second.alive
    size = module._PATCHERS[0].model_size()
    other = comfy.model_patcher.ModelPatcher(torch.nn.Module(), load_device=torch.device("cuda", 0),
                                             offload_device=torch.device("cpu"), size=size)
    mm.vram_capacity = size + size // 2  # room for one of the two
    mm.load_models_gpu([other])  # another model needs the GPU: ComfyUI evicts the group
    assert not second.alive and not module._POOLS
    assert [e.model for e in mm.current_loaded_models] == [other]
