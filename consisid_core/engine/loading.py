"""Build a ConsisIDEngine from a model folder or a single transformer file, offline."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from ..catalog import HF_URL
from ..errors import ModelFilesError, UnsupportedInputError
from .attention import available_backends
from .engine import ConsisIDEngine
from .files import ModelFiles, read_config, resolve_model_folder, resolve_single_file
from .info import ModelInfo
from .offload import MEMORY_MODES, Placement
from .weights import build_model, read_state_dict

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _as_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise UnsupportedInputError(f"dtype must be one of {list(DTYPES)} or a torch dtype; got {dtype!r}")


def _as_device(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnsupportedInputError("device 'cuda' was requested but torch sees no CUDA GPU; use device='cpu'")
    return device


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
    device="cuda",
    dtype=torch.bfloat16,
    memory_mode: str = "none",
    components_dir: str | Path | None = None,
    attention: str = "sdpa",
    generator_device: str = "cpu",
) -> ConsisIDEngine:
    """Load transformer, VAE, T5, tokenizer and scheduler; never touches the network.

    `path` is a model folder in the BestWishYsh/ConsisID-preview layout, or a transformer `.safetensors`
    file (diffusers key names) whose config sits beside it or in the model folder (`components_dir`,
    else the folder above the file holding model_index.json).
    """
    if memory_mode not in MEMORY_MODES:
        raise UnsupportedInputError(f"memory_mode must be one of {MEMORY_MODES}; got {memory_mode!r}")
    if attention not in available_backends():
        raise UnsupportedInputError(
            f"attention must be one of {available_backends()} (optional ones appear when installed); got {attention!r}"
        )
    if generator_device not in ("cpu", "device"):
        raise UnsupportedInputError("generator_device must be 'cpu' or 'device'")
    dtype = _as_dtype(dtype)
    device = _as_device(device)
    path = Path(path).expanduser()
    files = resolve_single_file(path, components_dir) if path.is_file() else resolve_model_folder(path)

    from diffusers import AutoencoderKLCogVideoX, ConsisIDTransformer3DModel

    t_config = read_config(files.transformer.config)
    v_config = read_config(files.vae.config)
    source = f"{HF_URL}/tree/main/transformer"
    transformer = build_model(
        ConsisIDTransformer3DModel, t_config, read_state_dict(files.transformer.weights, source), dtype,
        "transformer", source,
    )
    if not getattr(transformer, "is_train_face", False):
        raise ModelFilesError(
            f"{files.transformer.config} has is_train_face=false: this transformer has no face modules, "
            "so it is not a ConsisID checkpoint"
        )
    vae_source = f"{HF_URL}/tree/main/vae"
    vae = build_model(AutoencoderKLCogVideoX, v_config, read_state_dict(files.vae.weights, vae_source), dtype, "VAE",
                      vae_source)
    text_encoder = _load_text_encoder(files, dtype)
    tokenizer = _load_tokenizer(files)
    scheduler = _load_scheduler(files)

    placement = Placement(device, memory_mode)
    placement.install(text_encoder, transformer, vae)
    return ConsisIDEngine(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        info=ModelInfo.from_configs(dict(transformer.config), dict(vae.config)), placement=placement, dtype=dtype,
        source=str(path), attention=attention, generator_device=generator_device,
    )
