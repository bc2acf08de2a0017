"""The canvas's worker pool on CPU (2 processes, gloo, CFG parallel): what the workers hold and run with, Cancel
at the next step, LoRAs carried into the workers, and a worker's own error line reaching the caller.

Single-process runs of the same engine code are the reference. One pool serves the module (tens of seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import consisid_core
from consisid_core.cancel import Cancelled
from consisid_core.parallel import ParallelConfig
from consisid_core.parallel import worker_launch
from consisid_core.parallel.pool import ParallelPool, WorkerError
from support.engine_inputs import PROMPT, face_image, identity

pytestmark = pytest.mark.slow
SETTINGS = dict(num_frames=9, num_inference_steps=4, guidance_scale=6.0, seed=3)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def inputs(engine):
    lfe = engine.transformer.local_facial_extractor
    id_cond, hidden = identity(id_dim=lfe.id_embedding_mapping[0].in_features,
                               vit_dim=engine.transformer.config.LFE_vit_dim)
    text = engine.encode_text(PROMPT, "ugly", with_negative=True)
    return text, engine.encode_global(face_image(), height=32, width=48), engine.encode_local(id_cond, hidden)


@pytest.fixture(scope="module")
def pool(tiny_model):
    pool = ParallelPool(str(tiny_model), ParallelConfig(cfg_parallel=True), device="cpu", runtime={"dtype": "fp32"})
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def lora_file(engine, tmp_path_factory) -> Path:
    """A random LoRA on every block linear of the tiny transformer."""
    gen = torch.Generator().manual_seed(5)
    state = {}
    for name, module in engine.transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("transformer_blocks.") and "norm" not in name:
            state[f"transformer.{name}.lora_A.weight"] = torch.randn(2, module.in_features, generator=gen) * 0.3
            state[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, 2, generator=gen) * 0.3
    path = tmp_path_factory.mktemp("lora") / "tiny_lora.safetensors"
    save_file(state, str(path))
    return path


def test_workers_are_our_entry_point_and_hold_only_the_transformer(pool, tiny_model):
    infos = pool.describe()
    assert [i["pid"] for i in infos] == pool.pids
    for info in infos:
        assert Path(info["main"]).resolve() == REPO / "consisid_core" / "parallel" / "worker_main.py"
        assert info["sys_path"][0] == str(REPO)  # the pack's folder, then the interpreter's own paths
        assert info["text_encoders"] == 0 and info["vaes"] == 0, info  # no T5, no VAE object in the process
        assert not info["has_text_encoder"] and not info["has_vae"]
        assert info["dtype"] == "float32" and info["weight_dtype"] == "default" and info["compile"] == "off"


def test_parallel_run_equals_one_process_and_reports_every_step(pool, engine, inputs):
    want = engine.denoise(*inputs, **SETTINGS).latents
    seen: list = []
    got = pool.denoise(*inputs, progress=lambda s, t: seen.append((s, t)), **SETTINGS).latents
    print(f"2 CFG-parallel workers vs one process: max |latent difference| {(got - want).abs().max().item():.2e}")
    assert (got - want).abs().max().item() <= 1e-5
    assert seen == [(i, 4) for i in range(1, 5)]
    assert pool.last_run == {0: ("done", 4), 1: ("done", 4)}


def test_cancel_stops_every_worker_at_its_next_step(pool, engine, inputs):
    long = {**SETTINGS, "num_inference_steps": 200}
    with pytest.raises(Cancelled):  # asked before the first step ends: every rank runs exactly one step
        pool.denoise(*inputs, should_cancel=lambda: True, **long)
    assert pool.last_run == {0: ("cancelled", 1), 1: ("cancelled", 1)}

    seen: list = []
    with pytest.raises(KeyboardInterrupt):  # ComfyUI's progress bar raises on Cancel
        pool.denoise(*inputs, progress=lambda s, t: seen.append(s) or (s >= 3 and _interrupt()), **long)
    steps = {rank: steps for rank, (status, steps) in pool.last_run.items()}
    print(f"cancelled at progress step {seen[-1]}: the cancel reached the ranks after steps {pool.cancel_seen}, "
          f"they stopped after {steps} of 200 steps")
    assert set(s for s, _ in pool.last_run.values()) == {"cancelled"}
    assert steps[0] == steps[1] >= 3  # the same step on every rank...
    assert steps[0] <= min(pool.cancel_seen.values()) + 1  # ...the end of the step during which the cancel arrived
    class Interrupted(Exception):  # ComfyUI's throw_exception_if_processing_interrupted raises from the hook
        pass

    def interrupted() -> None:
        if len(seen) >= 2:
            raise Interrupted()

    seen = []
    with pytest.raises(Interrupted):
        pool.denoise(*inputs, progress=lambda s, t: seen.append(s), should_cancel=interrupted, **long)
    assert {s for s, _ in pool.last_run.values()} == {"cancelled"} and max(n for _, n in pool.last_run.values()) < 200
    again = pool.denoise(*inputs, **SETTINGS).latents  # the group is still in step
    assert (again - engine.denoise(*inputs, **SETTINGS).latents).abs().max().item() <= 1e-5


def _interrupt():
    raise KeyboardInterrupt("Processing interrupted")


def test_lora_stack_reaches_the_workers(pool, engine, inputs, lora_file):
    plain = engine.denoise(*inputs, **SETTINGS).latents
    engine.load_lora(lora_file, 0.8)
    try:
        with_lora = engine.denoise(*inputs, **SETTINGS).latents
    finally:
        engine.unload_lora()
    pool.loras = ((str(lora_file), 0.8),)  # what the Parallel Workers node sets from a ConsisID LoRA chain
    got = pool.denoise(*inputs, **SETTINGS).latents
    info = pool.describe()
    pool.loras = ()
    without = pool.denoise(*inputs, **SETTINGS).latents
    print(f"LoRA run: parallel vs one process {(got - with_lora).abs().max().item():.2e}; "
          f"effect of the LoRA {(with_lora - plain).abs().max().item():.2e}")
    assert (with_lora - plain).abs().max().item() > 1e-3  # the LoRA changes the result...
    assert (got - with_lora).abs().max().item() <= 1e-5  # ...in the workers exactly as in one process
    assert all(list(i["loras"].values()) == [(lora_file.name, 0.8)] for i in info)
    assert (without - plain).abs().max().item() <= 1e-5  # and leaves them when the stack is empty


def test_weight_dtype_and_compile_reach_the_workers(tiny_model):
    runtime = {"dtype": "fp32", "weight_dtype": "fp8_e4m3fn", "compile": "blocks"}
    fp8 = ParallelPool(str(tiny_model), ParallelConfig(cfg_parallel=True), device="cpu", runtime=runtime)
    try:
        infos = fp8.describe()
    finally:
        fp8.close()
    blocks = len(consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32).transformer.transformer_blocks)
    for info in infos:
        assert info["weight_dtype"] == "fp8_e4m3fn" and info["compile"] == "blocks"
        assert info["fp8_layers"] > 0 and info["compiled_blocks"] == blocks, info  # the live modules, not the settings


def test_a_worker_exception_reaches_the_caller_with_its_own_line(pool, inputs, tiny_model):
    with pytest.raises(WorkerError, match=r"parallel worker \d failed: ModelFilesError: LoRA file .*no_such_lora"):
        pool.denoise(*inputs, loras=(("/nonexistent/no_such_lora.safetensors", 1.0),), **SETTINGS)
    assert not pool.alive  # shut down; the node starts a new group on the next use
    with pytest.raises(WorkerError, match=r"parallel worker \d could not start: ModelFilesError: "):
        ParallelPool(str(tiny_model / "vae"), ParallelConfig(cfg_parallel=True), device="cpu")


def test_a_worker_that_dies_silently_still_names_its_error(tiny_model, monkeypatch):
    monkeypatch.setattr(worker_launch, "ENTRY", "consisid_core.parallel.no_such_worker")
    with pytest.raises(WorkerError, match="exited during start-up: .*No module named consisid_core.parallel.no_such"):
        ParallelPool(str(tiny_model), ParallelConfig(cfg_parallel=True), device="cpu", start_timeout=60)
