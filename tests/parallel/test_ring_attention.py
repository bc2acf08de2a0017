"""Ring attention without flash-attn: the LSE stays float32 and loses the efficient kernel's padding.

torch's efficient SDPA kernel is CUDA-only, so on the CPU a stand-in takes its place with the same contract: output
in the input dtype, log-sum-exp in float32 padded to a multiple of 32 rows. yunchang's own torch path (which casts
that LSE to bf16 and merges it unpadded) must fail with it, as it does on CUDA; ours must equal full attention.
Run as a script under torchrun, this file is one ring rank (gloo)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from consisid_core.parallel import ParallelConfig, ParallelSetupError
from consisid_core.parallel import ring_attention as ring

REPO = Path(__file__).resolve().parents[2]
TOKENS, HEADS, DIM = 40, 2, 16  # 40 tokens per rank: the stand-in pads the LSE to 64 rows


def padded_efficient_kernel(q, k, v, attn_bias=None, compute_log_sumexp=True, dropout_p=0.0, is_causal=False,
                            scale=None):
    """CPU stand-in for aten._scaled_dot_product_efficient_attention on [B, H, S, D]: (out, padded fp32 LSE, ...)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q.double() @ k.double().transpose(-2, -1)) * scale
    lse = torch.logsumexp(scores, dim=-1)
    out = (torch.softmax(scores, dim=-1) @ v.double()).to(q.dtype)
    rows = math.ceil(q.shape[2] / 32) * 32
    padded = torch.full((*lse.shape[:2], rows), float("inf"), dtype=torch.float32)  # padding is garbage
    padded[..., : q.shape[2]] = lse.float()
    return out, padded, None, None


def full_attention(q, k, v):
    """float64 reference on [B, S, H, D]."""
    scores = torch.einsum("bshd,bthd->bhst", q.double(), k.double()) * q.shape[-1] ** -0.5
    return torch.einsum("bhst,bthd->bshd", torch.softmax(scores, dim=-1), v.double())


def _qkv(dtype, tokens=2 * TOKENS, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(1, tokens, HEADS, DIM, generator=gen) * 2).to(dtype) for _ in range(3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_blocks_merged_with_the_padded_lse_equal_full_attention(monkeypatch, dtype):
    monkeypatch.setattr(ring, "EFFICIENT_KERNEL", padded_efficient_kernel)
    q, k, v = _qkv(dtype)
    out = lse = None
    for start, stop in ((0, 13), (13, 40), (40, 80)):  # uneven blocks, as a ring of unequal ranks would give
        out, lse = ring.merge_block(out, lse, *ring.efficient_block(q, k[:, start:stop], v[:, start:stop], DIM**-0.5))
    assert lse.dtype == torch.float32 and lse.shape == (1, HEADS, 2 * TOKENS)
    ref = full_attention(q, k, v)
    diff = (out.double() - ref).abs().max().item()
    assert diff < (1e-5 if dtype == torch.float32 else 2e-2), diff
    scores = torch.einsum("bshd,bthd->bhst", q.double(), k.double()) * DIM**-0.5
    torch.testing.assert_close(lse.double(), torch.logsumexp(scores, -1), rtol=1e-5, atol=1e-4)


def test_yunchangs_torch_path_breaks_on_the_padded_lse(monkeypatch):
    """The defect the module exists for, reproduced with the stand-in: yunchang's merge cannot broadcast 64 rows to 40."""
    import yunchang.kernels.attention as kernels
    from yunchang.ring.utils import update_out_and_lse

    monkeypatch.setattr(kernels, "_scaled_dot_product_efficient_attention", padded_efficient_kernel)
    q, k, v = _qkv(torch.bfloat16, tokens=TOKENS)
    out, lse = update_out_and_lse(None, None, *kernels.pytorch_attn_forward(q, k, v, causal=False, op_type="efficient"))
    block = kernels.pytorch_attn_forward(q, k, v, causal=False, op_type="efficient")
    assert block[1].dtype == torch.bfloat16 and block[1].shape[-1] == 64  # cast to bf16 and padded
    with pytest.raises(RuntimeError, match="size of tensor"):
        update_out_and_lse(out, lse, *block)


def test_ring_is_refused_without_cuda_before_the_package_check(monkeypatch):
    with pytest.raises(ParallelSetupError, match=r"ring attention \(--ring > 1\) runs only on CUDA but the device is 'cpu'"):
        ParallelConfig(ring_degree=2).validate(2, "cpu")
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "yunchang" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParallelSetupError) as error:
        ParallelConfig(ring_degree=2).validate(2)
    assert "runs only on CUDA" in str(error.value) and "xfuser" not in str(error.value)
    with pytest.raises(ParallelSetupError, match="pip install xfuser"):  # Ulysses alone still needs the package
        ParallelConfig(ulysses_degree=2).validate(2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ring_ranks_through_the_usp_layer_equal_full_attention(tmp_path):
    """2 gloo ranks, the layer `init_parallel` builds for CUDA without flash-attn, the stand-in kernel."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), __file__, str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert "size of tensor" in result["stock_error"], result  # yunchang's own path fails here as on CUDA
        assert result["fp32_diff"] < 1e-6 and result["bf16_diff"] < 8e-3, result  # bf16: a few output roundings


@pytest.mark.gpu
def test_efficient_kernel_blocks_merge_exactly_at_the_real_size():
    """CUDA: 8,888 tokens per ring rank (17,776 = 49 frames at 480x720 + 226 text over 2 ranks), 48 heads, bf16."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU: the efficient kernel's real LSE padding was not checked")
    gen = torch.Generator("cuda").manual_seed(0)
    q, k, v = (torch.randn(1, 17776, 48, 64, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(3))
    raw = ring.EFFICIENT_KERNEL(q[:, :8888].transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None, True)[1]
    assert raw.shape[-1] == 8896 and raw.dtype == torch.float32  # what broke yunchang's merge
    ref = torch.nn.functional.scaled_dot_product_attention(*(t.float().transpose(1, 2) for t in (q, k, v)))
    for rank in range(2):
        rows = slice(rank * 8888, (rank + 1) * 8888)
        out = lse = None
        for block in range(2):
            cols = slice(block * 8888, (block + 1) * 8888)
            out, lse = ring.merge_block(out, lse, *ring.efficient_block(q[:, rows], k[:, cols], v[:, cols], 64**-0.5))
        want = ref[:, :, rows].transpose(1, 2)
        error = ((out - want).norm() / want.norm()).item()
        assert error < 1e-2, error


def _rank_main(out_dir: str) -> None:
    """One ring rank: yunchang's stock torch path (expected to fail), then the layer init_parallel builds."""
    import torch.distributed as dist
    import yunchang.kernels.attention as kernels
    from yunchang import LongContextAttention
    from yunchang.kernels import AttnType

    from consisid_core.parallel.groups import _usp_attention

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    kernels._scaled_dot_product_efficient_attention = padded_efficient_kernel
    ring.EFFICIENT_KERNEL = padded_efficient_kernel
    attention = _usp_attention(ParallelConfig(ring_degree=2), rank, world, on_cuda=True)  # CUDA without flash-attn
    result = {}
    shard = slice(rank * TOKENS, (rank + 1) * TOKENS)
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        q, k, v = _qkv(dtype)
        heads_first = [t[:, shard].transpose(1, 2) for t in (q, k, v)]  # the engine's [B, heads, S, D]
        got = attention(*heads_first).transpose(1, 2)
        want = full_attention(q, k, v)[:, shard]
        result[f"{name}_diff"] = ((got.double() - want).abs().max() / want.abs().max()).item()  # relative
    stock = LongContextAttention(ring_impl_type="basic", attn_type=AttnType.TORCH_EFFICIENT)
    q, k, v = _qkv(torch.bfloat16)
    try:
        stock(q[:, shard], k[:, shard], v[:, shard], causal=False)
        result["stock_error"] = ""
    except RuntimeError as exc:
        result["stock_error"] = " ".join(str(exc).split())[-300:]
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(sys.argv[1])
