"""Build a ConsisIDEngine from a model folder or a single transformer file, offline."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from ..catalog import HF_URL
from ..errors import ModelFilesError
from ..model_info import ModelInfo
from ..runtime import RuntimeSetting, resolve_runtime
from ..runtime.compile_blocks import compile_blocks
from ..runtime.fp8 import apply_weight_dtype
from ..runtime.offload import Placement
from .engine import ConsisIDEngine
from .files import ModelFiles, read_config, resolve_model_folder, resolve_single_file
from .weights import build_model

def _load_text_encoder(files: ModelFiles, dtype: torch.dtype):
    from transformers import T5EncoderModel

    folder = files.text_encoder.config.parent
    kwargs = {"local_files_only": True}
    params = inspect.signature(T5EncoderModel.from_pretrained).parameters
    kwargs["dtype" if "dtype" in params or _transformers_major() >= 5 else "torch_dtype"] = dtype
    try:
        return T5EncoderModel.from_pretrained(str(folder), **kwargs).eval().requires_grad_(False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelFilesError(
            f"the T5 text encoder in {folder} could not be loaded ({exc}); check its files or re-download "
            f"{HF_URL}/tree/main/text_encoder"
        ) from exc


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _load_tokenizer(files: ModelFiles):
    folder = files.tokenizer_dir
    try:
        if (folder / "spiece.model").is_file():
            from transformers import T5Tokenizer

            return T5Tokenizer.from_pretrained(str(folder), local_files_only=True)
        from transformers import T5TokenizerFast

        return T5TokenizerFast.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise ModelFilesError(
            f"the tokenizer in {folder} could not be loaded ({exc}); check its files or re-download "
            f"{HF_URL}/tree/main/tokenizer"
        ) from exc


def _load_scheduler(files: ModelFiles):
    from diffusers import CogVideoXDPMScheduler

    return CogVideoXDPMScheduler.from_config(read_config(files.scheduler_config))


def load_engine(
    path: str | Path,
    device="auto",
    dtype="auto",
    memory_mode: str = "none",
    components_dir: str | Path | None = None,
    attention: str = "sdpa",
    noise_device: str = "cpu",
    runtime: RuntimeSetting | None = None,
    managed: bool = False,
    weight_dtype: str = "default",
    compile: str = "off",
) -> ConsisIDEngine:
    """Load transformer, VAE, T5, tokenizer and scheduler; never touches the network.

    Device, dtype, attention, memory mode and noise device come from `runtime` (see consisid_core.runtime),
    or are resolved from the keyword arguments; a combination that cannot run is refused before loading.
    `path` is a model folder in the BestWishYsh/ConsisID-preview layout, or a transformer `.safetensors`
    file (diffusers key names) whose config sits beside it or in the model folder (`components_dir`,
    else the folder above the file holding model_index.json).
    `managed`: a memory manager (ComfyUI) moves the models; see `Placement`.
    """
    if runtime is None:  # checked here, before any file is read or model built
        runtime = resolve_runtime(device=device, dtype=dtype, noise_device=noise_device, attention=attention,
                                  memory_mode=memory_mode, weight_dtype=weight_dtype, compile=compile)
    dtype, device = runtime.dtype, runtime.device
    path = Path(path).expanduser()
    files = resolve_single_file(path, components_dir) if path.is_file() else resolve_model_folder(path)

    from diffusers import AutoencoderKLCogVideoX, ConsisIDTransformer3DModel

    t_config = read_config(files.transformer.config)
    v_config = read_config(files.vae.config)
    source = f"{HF_URL}/tree/main/transformer"
    transformer = build_model(ConsisIDTransformer3DModel, t_config, files.transformer.weights, dtype, "transformer", source)
    if not getattr(transformer, "is_train_face", False):
        raise ModelFilesError(
            f"{files.transformer.config} has is_train_face=false: this transformer has no face modules, "
            "so it is not a ConsisID checkpoint"
        )
    compile_blocks(apply_weight_dtype(transformer, runtime.weight_dtype), runtime.compile)  # fp8 storage, compile
    vae_source = f"{HF_URL}/tree/main/vae"
    vae = build_model(AutoencoderKLCogVideoX, v_config, files.vae.weights, dtype, "VAE", vae_source)
    text_encoder = _load_text_encoder(files, dtype)
    tokenizer = _load_tokenizer(files)
    scheduler = _load_scheduler(files)

    placement = Placement(device, runtime.memory_mode, managed=managed)
    placement.install(text_encoder, transformer, vae)
    return ConsisIDEngine(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        info=ModelInfo.from_configs(dict(transformer.config), dict(vae.config)), placement=placement, dtype=dtype,
        source=str(path), attention=runtime.attention, runtime=runtime,
    )
