"""fp8 weight storage: what is stored in fp8 and what is not, bytes, error vs the model dtype, file untouched,
every memory mode, the fast path's numerics and its refusal without fp8 tensor cores."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

import consisid_core
from consisid_core.runtime.fp8 import FP8Linear, apply_weight_dtype, quantize, scaled_mm_linear, weight_bytes
from consisid_core.engine.transformer_forward import transformer_forward
from consisid_core.runtime import RuntimeSettingError, resolve_runtime
from support.engine_inputs import PROMPT, face_image, identity

FP8 = torch.float8_e4m3fn
KEPT = ("patch_embed", "time_embedding", "norm", "local_facial_extractor", "perceiver_cross_attention", "proj_out")


def _full_width_model(layers: int = 2):
    """Real block width (48 heads x 64), real text width; a small face extractor (it is never stored in fp8).

    Built on the meta device and filled from one pool of normal numbers scaled per layer (1/sqrt(fan-in)):
    drawing 300M fresh numbers would take longer than the test.
    """
    from diffusers import ConsisIDTransformer3DModel

    with torch.device("meta"):
        model = ConsisIDTransformer3DModel(
            num_attention_heads=48, attention_head_dim=64, in_channels=8, out_channels=4, time_embed_dim=512,
            text_embed_dim=4096, num_layers=layers, sample_width=12, sample_height=8, sample_frames=9,
            max_text_seq_length=16, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False,
            is_train_face=True, cross_attn_interval=2, cross_attn_dim_head=128, cross_attn_num_heads=16,
            LFE_id_dim=528, LFE_vit_dim=16, LFE_depth=5, LFE_dim_head=8, LFE_num_heads=2, LFE_num_id_token=2,
            LFE_num_querie=4, LFE_output_dim=2048, LFE_ff_mult=1, LFE_num_scale=5,
        )
    model = model.to(torch.bfloat16).to_empty(device="cpu")
    pool = torch.randn(1 << 22, generator=torch.Generator().manual_seed(0)).bfloat16()
    with torch.no_grad():
        for i, (name, param) in enumerate(model.named_parameters()):
            flat = param.view(-1)
            start = (i * 7919) % pool.numel()
            for offset in range(0, flat.numel(), pool.numel() - start):
                chunk = min(flat.numel() - offset, pool.numel() - start)
                flat[offset:offset + chunk] = pool[start:start + chunk]
            if param.ndim >= 2:
                param.mul_(param.shape[-1] ** -0.5)
            elif "norm" in name and name.endswith("weight"):
                param.mul_(0.1).add_(1.0)
            else:
                param.mul_(0.02)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def full_width():
    """One forward of the model in bf16, then the same model converted to fp8 in place and the same forward."""
    model = _full_width_model()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, 12, generator=gen).bfloat16()
    text = torch.randn(2, 16, 4096, generator=gen).bfloat16()
    tokens = torch.randn(1, 4, 2048, generator=gen).bfloat16()
    t = torch.tensor([500, 500])
    sizes = {name: p.numel() * p.element_size() for name, p in model.named_parameters()}
    total = weight_bytes(model)
    with torch.no_grad():
        ref = transformer_forward(model, x, text, t, None, tokens, 1.0).float()
        apply_weight_dtype(model, "fp8_e4m3fn")
        out = transformer_forward(model, x, text, t, None, tokens, 1.0).float()
    return dict(model=model, ref=ref, out=out, sizes=sizes, total=total)


def test_only_block_linears_outside_norms_are_fp8(full_width):
    fp8 = full_width["model"]
    for name, param in fp8.named_parameters():
        stored_fp8 = param.dtype == FP8
        assert stored_fp8 == (name.startswith("transformer_blocks.") and name.endswith(".weight")
                              and "norm" not in name and param.ndim == 2), name
        if any(k in name for k in KEPT) or name.endswith(".bias"):
            assert param.dtype == torch.bfloat16, name
    for name in ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.0.proj", "ff.net.2"):
        layer = fp8.transformer_blocks[1].get_submodule(name)
        assert isinstance(layer, FP8Linear) and layer.weight_scale.dtype == torch.float32


def test_bytes_of_the_stored_layers_are_halved(full_width):
    fp8, sizes = full_width["model"], full_width["sizes"]
    converted = [n for n, p in fp8.named_parameters() if p.dtype == FP8]
    before = sum(sizes[n] for n in converted)
    after = sum(p.numel() for n, p in fp8.named_parameters() if n in converted) + 4 * len(converted)  # + scales
    print(f"\nfull-width 2-layer model: fp8 layers {before / 2**20:.0f} -> {after / 2**20:.0f} MiB, whole transformer "
          f"{full_width['total'] / 2**20:.0f} -> {weight_bytes(fp8) / 2**20:.0f} MiB")
    assert abs(after / before - 0.5) < 1e-3
    assert full_width["total"] - weight_bytes(fp8) == before - after


def test_one_forward_in_fp8_is_close_to_the_model_dtype(full_width):
    ref, out = full_width["ref"], full_width["out"]
    error = ((out - ref).norm() / ref.norm()).item()
    print(f"\nfull-width 2-layer forward, fp8_e4m3fn vs bf16: relative L2 error {error:.4f}")
    assert 1e-4 < error < 0.05


def test_fp8_layer_is_the_upcast_weight_times_its_scale():
    layer = nn.Linear(64, 32).bfloat16()
    holder = nn.Module()
    holder.transformer_blocks = nn.ModuleList([nn.Module()])
    holder.transformer_blocks[0].proj = layer
    apply_weight_dtype(holder, "fp8_e4m3fn")
    x = torch.randn(3, 64).bfloat16()
    expected = torch.nn.functional.linear(x, layer.weight.float().mul(layer.weight_scale).bfloat16(), layer.bias)
    assert isinstance(layer, FP8Linear) and torch.equal(layer(x), expected)


def test_quantize_round_trips_within_fp8_precision():
    w = torch.randn(64, 48) * 0.03
    q, scale = quantize(w)
    assert q.dtype == FP8 and scale.dtype == torch.float32
    assert torch.log2(scale).item() == int(torch.log2(scale).item())  # a power of two: exact upcast
    assert (q.float() * scale - w).abs().max() <= w.abs().max() * 2**-4  # 3 mantissa bits
    assert q.float().abs().max() >= 224  # the range is used (a power-of-two scale uses half of it at worst)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_with_fp8_leaves_the_file_untouched_and_every_memory_mode_agrees(tiny_model):
    files = sorted((tiny_model / "transformer").glob("*.safetensors"))
    before = [_sha(f) for f in files]
    id_cond, hidden = identity()
    common = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, height=32, width=48, num_frames=9,
                  num_inference_steps=2, seed=4)
    default = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32).generate(PROMPT, **common)
    videos = {}
    for mode in ("none", "model_offload", "sequential_offload"):
        engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, memory_mode=mode,
                                           weight_dtype="fp8_e4m3fn")
        assert engine.transformer.transformer_blocks[0].ff.net[2].weight.dtype == FP8
        videos[mode] = engine.generate(PROMPT, **common)
    assert [_sha(f) for f in files] == before
    assert all(torch.equal(v, videos["none"]) for v in videos.values())
    assert 0 < (videos["none"] - default).abs().max() < 0.1


def test_fast_fp8_is_refused_without_fp8_tensor_cores():
    with pytest.raises(RuntimeSettingError) as error:
        resolve_runtime(device="cpu", weight_dtype="fp8_e4m3fn_fast")
    assert error.value.setting == "weight_dtype" and "fp8_e4m3fn" in str(error.value)
    with pytest.raises(RuntimeSettingError) as error:
        resolve_runtime(device="cpu", weight_dtype="int4")
    assert error.value.setting == "weight_dtype"
    assert resolve_runtime(device="cpu", weight_dtype="fp8_e4m3fn").weight_dtype == "fp8_e4m3fn"


def test_scaled_mm_path_matches_the_upcast_path():
    """torch._scaled_mm also exists on the CPU in recent torch; the kernel is the GPU's, the arithmetic the same."""
    layer = nn.Linear(64, 32).bfloat16()
    apply = nn.Module()
    apply.transformer_blocks = nn.ModuleList([nn.Module()])
    apply.transformer_blocks[0].proj = layer
    apply_weight_dtype(apply, "fp8_e4m3fn")
    x = torch.randn(2, 5, 64).bfloat16()
    try:
        fast = scaled_mm_linear(x, layer.weight, layer.weight_scale, layer.bias)
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"torch._scaled_mm is not available on this CPU build: {exc}")
    slow = layer(x)
    error = ((fast.float() - slow.float()).norm() / slow.float().norm()).item()
    assert fast.shape == slow.shape == (2, 5, 32) and error < 0.05  # only the input's fp8 rounding differs


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_fast_fp8_on_a_gpu_with_fp8_tensor_cores(dtype):
    """CUDA's own _scaled_mm (fp32 output: no fused bias), full block width, against the upcast fp8 layer."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("needs an NVIDIA GPU with compute capability 8.9+ (not available here)")
    layer = nn.Linear(3072, 3072).cuda().to(dtype)
    holder = nn.Module()
    holder.transformer_blocks = nn.ModuleList([nn.Module()])
    holder.transformer_blocks[0].proj = layer
    x = torch.randn(4, 256, 3072, device="cuda", dtype=dtype)
    ref = layer(x)
    apply_weight_dtype(holder, "fp8_e4m3fn_fast")
    out = layer(x)
    assert out.dtype == dtype
    assert ((out.float() - ref.float()).norm() / ref.float().norm()).item() < 0.05
    layer.fast = False  # the upcast path with the same fp8 weights: only the activations' rounding differs
    upcast = layer(x)
    assert ((out.float() - upcast.float()).norm() / upcast.float().norm()).item() < 0.04


def test_a_lora_on_fp8_layers_keeps_the_model_dtype():
    """peft casts adapters to the wrapped weight's dtype; float8 adapters cannot compute, so fp8 layers say bf16."""
    from peft import LoraConfig, inject_adapter_in_model

    holder = nn.Module()
    holder.transformer_blocks = nn.ModuleList([nn.Module()])
    holder.transformer_blocks[0].proj = nn.Linear(16, 8).bfloat16()
    apply_weight_dtype(holder, "fp8_e4m3fn")
    x = torch.randn(2, 16).bfloat16()
    base = holder.transformer_blocks[0].proj(x)
    holder = inject_adapter_in_model(LoraConfig(r=4, target_modules=["proj"], init_lora_weights=False), holder)
    layer = holder.transformer_blocks[0].proj
    assert layer.lora_A["default"].weight.dtype == torch.bfloat16
    delta = layer.lora_B["default"](layer.lora_A["default"](x)) * layer.scaling["default"]
    torch.testing.assert_close(layer(x), base + delta)


def _scaled_mm_spy(monkeypatch, cuda_rules: bool = True) -> list[dict]:
    """Record every torch._scaled_mm call; with `cuda_rules`, refuse what CUDA's kernel refuses (the CPU one accepts it)."""
    real, calls = torch._scaled_mm, []

    def spy(a, b, *, scale_a, scale_b, bias=None, out_dtype=None, **kwargs):
        calls.append(dict(a=a, b=b, scale_a=scale_a, scale_b=scale_b, bias=bias, out_dtype=out_dtype))
        if cuda_rules and bias is not None and out_dtype == torch.float32:
            raise RuntimeError("Bias is not supported when out_dtype is set to Float32")  # CUDA's message
        return real(a, b, scale_a=scale_a, scale_b=scale_b, bias=bias, out_dtype=out_dtype, **kwargs)

    monkeypatch.setattr(torch, "_scaled_mm", spy)
    return calls


def _fp8_layer(out_features: int, in_features: int, dtype: torch.dtype) -> FP8Linear:
    torch.manual_seed(3)
    holder = nn.Module()
    holder.transformer_blocks = nn.ModuleList([nn.Module()])
    holder.transformer_blocks[0].proj = nn.Linear(in_features, out_features).to(dtype)
    with torch.no_grad():
        holder.transformer_blocks[0].proj.bias.normal_(0, 0.5)  # a bias large enough to matter
    apply_weight_dtype(holder, "fp8_e4m3fn_fast")
    return holder.transformer_blocks[0].proj


def test_fast_fp8_in_fp32_adds_the_bias_after_scaled_mm(monkeypatch):
    """CUDA's _scaled_mm refuses a bias with a float32 output: the bias goes in afterwards, and is not lost."""
    layer = _fp8_layer(32, 64, torch.float32)
    calls = _scaled_mm_spy(monkeypatch)
    x = torch.randn(3, 7, 64, generator=torch.Generator().manual_seed(1))
    out = layer(x)
    assert len(calls) == 1 and calls[0]["out_dtype"] == torch.float32 and calls[0]["bias"] is None
    weight = layer.weight.double() * layer.weight_scale.double()
    exact = (calls[0]["a"].double() * calls[0]["scale_a"].double()) @ weight.T + layer.bias.double()
    assert out.dtype == torch.float32 and out.shape == (3, 7, 32)
    torch.testing.assert_close(out.double().reshape(-1, 32), exact, rtol=1e-5, atol=1e-5)
    ref = torch.nn.functional.linear(x.double(), weight, layer.bias.double())  # fp32/64 reference: only x rounded
    error = ((out.double() - ref).norm() / ref.norm()).item()
    assert error < 0.04, error


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=["bf16", "fp16", "fp32"])
def test_fast_fp8_divides_the_activations_by_the_scale_it_hands_to_scaled_mm(monkeypatch, dtype):
    """x8 * scale_a reconstructs x within fp8 rounding, bit-exactly the quantisation of x by that same scale."""
    layer = _fp8_layer(32, 64, dtype)
    calls = _scaled_mm_spy(monkeypatch)
    x = (torch.randn(5, 64, generator=torch.Generator().manual_seed(2)) * 3.7).to(dtype)  # amax/448 no power of 2
    out = layer(x)
    (call,) = calls
    x8, scale = call["a"], call["scale_a"]
    assert scale.dtype == torch.float32 and scale.numel() == 1
    expected = (x.float() / scale).clamp(-448, 448).to(FP8)  # the quantisation by the scale actually passed
    assert torch.equal(x8.view(torch.uint8), expected.view(torch.uint8)), "activations divided by another scale"
    back = x8.float() * scale
    assert ((back - x.float()).abs() <= x.float().abs() * 2**-4 + scale * 2**-9).all()  # 3 mantissa bits
    assert x.float().abs().max() / scale > 224  # the fp8 range is used
    weight = layer.weight.double() * layer.weight_scale.double()
    exact = back.double() @ weight.T + layer.bias.double()
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    assert ((out.double() - exact).abs() <= tol * exact.abs() + tol).all()
    assert (call["bias"] is None) == (dtype == torch.float32)


def test_fast_fp8_scale_is_never_zero_in_fp16():
    from consisid_core.runtime.fp8 import activation_scale

    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for rows in (torch.zeros(2, 8, dtype=dtype), torch.full((2, 8), 1e-6).to(dtype)):
            scale = activation_scale(rows)
            assert scale.to(dtype) > 0 and torch.log2(scale) == torch.round(torch.log2(scale))
