"""One runtime setting: invalid device/dtype/attention/mode/noise combinations are refused at load time, before
any model file is read, with one line naming the setting; the attention choices list only importable backends."""

from __future__ import annotations

import sys

import pytest
import torch

import consisid_core
from consisid_core.runtime import attention
from consisid_core.runtime import RuntimeSettingError, resolve_runtime

KERNEL_PROBE = attention.backend_kernel_error  # the real probe (fake_cuda replaces it)


@pytest.fixture
def no_loading(monkeypatch):
    """Any attempt to build a model fails the test: refusals must come before T5/VAE/DiT load."""
    def boom(*args, **kwargs):
        raise AssertionError("a model was loaded although the runtime setting is invalid")

    monkeypatch.setattr("consisid_core.engine.loading.build_model", boom)
    monkeypatch.setattr("consisid_core.engine.loading._load_text_encoder", boom)


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch reports one bf16-capable CUDA GPU (only the resolver looks; nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(attention, "backend_kernel_error", lambda *a: None)  # no kernel can run without a GPU


@pytest.fixture
def broken_backend(monkeypatch, tmp_path):
    """'sageattention' maps to an installed module whose import fails like a wheel built for another torch."""
    (tmp_path / "broken_attn_wheel.py").write_text('raise OSError("libtorch_cuda.so: undefined symbol: _ZN3c104cuda")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(attention.OPTIONAL_BACKENDS, "sageattention", "broken_attn_wheel")
    monkeypatch.setattr(attention, "_IMPORT_ERRORS", {})
    yield
    sys.modules.pop("broken_attn_wheel", None)


def _refused(setting: str, match: str, **kwargs) -> RuntimeSettingError:
    with pytest.raises(RuntimeSettingError, match=match) as info:
        resolve_runtime(**kwargs)
    assert info.value.setting == setting
    assert "\n" not in str(info.value), "one line"
    return info.value


def test_auto_resolves_for_this_machine():
    rt = resolve_runtime()
    cuda = torch.cuda.is_available()
    assert rt.device.type == ("cuda" if cuda else "cpu")
    assert rt.dtype == (torch.bfloat16 if cuda else torch.float32)
    assert rt.face_dtype == rt.dtype, "EVA-CLIP runs in the pipeline dtype, as the reference"
    assert (rt.noise_device, rt.attention, rt.memory_mode) == ("cpu", "sdpa", "none")
    assert resolve_runtime(device="cpu", dtype="bf16").face_dtype == torch.bfloat16
    assert resolve_runtime(device="cpu", dtype="bf16", face_dtype="fp32").face_dtype == torch.float32


def test_auto_dtype_on_cuda_is_bf16(fake_cuda):
    rt = resolve_runtime(device="cuda")
    assert (rt.device.type, rt.dtype, rt.face_dtype) == ("cuda", torch.bfloat16, torch.bfloat16)


@pytest.mark.parametrize("kwargs, setting, match", [
    (dict(device="tpu"), "device", "'tpu' is not a device torch knows"),
    (dict(device="meta"), "device", "not supported"),
    (dict(device="cpu", dtype="fp8"), "dtype", "dtype must be one of"),
    (dict(device="cpu", face_dtype="int8"), "face_dtype", "face_dtype must be one of"),
    (dict(device="cpu", noise_device="cuda"), "noise_device", "noise_device must be 'cpu'"),
    (dict(device="cpu", memory_mode="turbo"), "memory_mode", "memory_mode must be one of"),
    (dict(device="cpu", attention="flash3"), "attention", "attention must be one of"),
    (dict(device="cpu", attention="sdpa_flash"), "attention", r"needs a CUDA GPU .* choose one of \['sdpa', 'sdpa_math'\]"),
    (dict(device="cpu", attention="sdpa_cudnn", dtype="bf16"), "attention", "needs a CUDA GPU"),
])
def test_invalid_settings_are_refused(kwargs, setting, match):
    _refused(setting, match, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_on_a_cpu_only_torch_is_refused():
    _refused("device", r"torch sees no CUDA GPU.*use device 'cpu'", device="cuda")


@pytest.mark.parametrize("backend", ["sdpa_flash", "sdpa_cudnn"])
def test_half_precision_kernels_refuse_fp32(fake_cuda, backend):
    _refused("attention", r"runs only in bf16/fp16 but the precision is fp32; choose precision bf16",
             device="cuda", dtype="fp32", attention=backend)
    assert resolve_runtime(device="cuda", dtype="bf16", attention=backend).attention == backend
    assert resolve_runtime(device="cuda", dtype="fp32", attention="sdpa_efficient").dtype == torch.float32


def test_missing_cuda_index_is_refused(fake_cuda):
    _refused("device", r"torch sees 1 CUDA GPU\(s\); use 'cuda:0'", device="cuda:3")


def test_uninstalled_backend_is_refused_and_not_listed(monkeypatch):
    monkeypatch.setitem(attention.OPTIONAL_BACKENDS, "flash_attn", "consisid_no_such_module")
    monkeypatch.setattr(attention, "_IMPORT_ERRORS", {})
    assert "flash_attn" not in attention.available_backends()
    _refused("attention", "not installed", device="cpu", attention="flash_attn")


def test_backend_whose_import_fails_is_refused_and_not_listed(broken_backend, fake_cuda):
    assert "sageattention" not in attention.available_backends()
    error = _refused("attention", r"importing broken_attn_wheel failed: OSError: .*undefined symbol",
                     device="cuda", dtype="bf16", attention="sageattention")
    assert "choose 'sdpa'" in str(error)


def test_load_engine_refuses_before_loading_anything(tiny_model, no_loading, fake_cuda):
    cases = [
        (dict(device="tpu"), "device"),
        (dict(device="cuda", dtype="fp32", attention="sdpa_flash"), "attention"),
        (dict(device="cpu", attention="sdpa_efficient"), "attention"),
        (dict(device="cpu", memory_mode="turbo"), "memory_mode"),
        (dict(device="cpu", noise_device="tpu"), "noise_device"),
    ]
    for kwargs, setting in cases:
        with pytest.raises(RuntimeSettingError) as info:
            consisid_core.load_engine(tiny_model, **kwargs)
        assert info.value.setting == setting, kwargs


def test_load_face_models_refuses_a_bad_device_first(tmp_path, no_loading):
    from consisid_core.face import load_face_models

    with pytest.raises(RuntimeSettingError, match="device 'tpu'"):
        load_face_models(tmp_path / "missing", device="tpu")  # refused before the files are even looked for


def test_engine_keeps_its_runtime(tiny_model):
    rt = resolve_runtime(device="cpu", dtype="fp32", noise_device="gpu", attention="sdpa_math")
    engine = consisid_core.load_engine(tiny_model, runtime=rt)
    assert engine.runtime is rt and engine.attention == "sdpa_math" and engine.dtype == torch.float32
    assert rt.with_changes(noise_device="cpu").noise_device == "cpu"
    with pytest.raises(RuntimeSettingError):
        rt.with_changes(attention="sdpa_flash")


def test_cli_refuses_a_bad_runtime_in_one_line_before_building_anything(capsys, monkeypatch):
    from consisid_core.cli import main

    def boom(*args, **kwargs):
        raise AssertionError("the random model was built although --device is invalid")

    monkeypatch.setattr("consisid_core.cli.generate.build_demo_model", boom)
    assert main(["generate", "--random-weights", "--device", "tpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: device 'tpu'") and "\n" not in err
    assert main(["generate", "--random-weights", "--device", "cpu", "--attention", "sdpa_flash"]) == 2
    assert "attention 'sdpa_flash' needs a CUDA GPU" in capsys.readouterr().err


def test_backend_whose_kernel_fails_on_this_gpu_is_refused(monkeypatch, tmp_path, fake_cuda):
    """It imports, but its kernel was built for another GPU/CUDA: refused at load time, not at the first step."""
    (tmp_path / "sage_for_other_arch.py").write_text("def sageattn(*a, **k):\n    raise RuntimeError('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(attention.OPTIONAL_BACKENDS, "sageattention", "sage_for_other_arch")
    monkeypatch.setattr(attention, "_IMPORT_ERRORS", {})
    monkeypatch.setattr(attention, "_KERNEL_ERRORS", {})
    monkeypatch.setattr(attention, "backend_kernel_error", KERNEL_PROBE)
    monkeypatch.setattr(attention, "_probe_inputs", lambda device, dtype: tuple(torch.zeros(1, 2, 4, 8) for _ in range(3)))

    def no_kernel(q, k, v):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    monkeypatch.setitem(attention.ATTENTION_FUNCTIONS, "sageattention", no_kernel)
    _refused("attention", r"'sageattention' does not run on this GPU with this torch \(RuntimeError: CUDA error: no "
             r"kernel image", device="cuda", dtype="bf16", attention="sageattention")
    monkeypatch.setitem(attention.ATTENTION_FUNCTIONS, "sageattention", lambda q, k, v: q)
    monkeypatch.setattr(attention, "_KERNEL_ERRORS", {})
    assert resolve_runtime(device="cuda", dtype="bf16", attention="sageattention").attention == "sageattention"
