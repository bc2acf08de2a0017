"""ConsisID DiT Loader and ConsisID Face Models Loader."""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import io
from consisid_core import choices, node_ids

from . import comfy_bridge, model_folders
from .comfy_memory import AUTO
from .errors import fail, label, reported_as
from .model_cache import REGISTRY, EngineHandle, EngineSettings, FaceModelsHandle, FaceSettings, settings_path
from .types import CATEGORY, Sockets

_log = logging.getLogger("ConsisID")

PRECISIONS = list(choices.PRECISIONS)
MEMORY_MODES = [AUTO] + list(choices.MEMORY_MODES)  # auto: ComfyUI decides (nodes/comfy_memory.py)
ONNX_PROVIDERS = [p.upper() for p in choices.ONNX_PROVIDERS]
FACE_DEVICES = ["default", "cpu"]
WEIGHT_DTYPES = list(choices.WEIGHT_DTYPES)
COMPILE_CHOICES = list(choices.COMPILE_CHOICES)

MODEL_TOOLTIP = (
    "A ConsisID model folder in ComfyUI/models/consisid/ (the BestWishYsh/ConsisID-preview layout: "
    "model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/, face_encoder/). "
    "extra_model_paths.yaml entries under the key 'consisid' are searched too."
)


def attention_backends() -> list[str]:
    """consisid_core's attention backends usable here (sdpa first; optional libraries only when installed)."""
    from consisid_core.runtime.attention import available_backends

    return available_backends()


def engine_runtime(device: str, precision: str, memory_mode: str, attention: str, weight_dtype: str = "default",
                   compile: str = "off"):
    """The checked runtime setting of a DiT Loader's choices (the same resolver as the CLI's; memory_mode "auto"
    leaves placement to ComfyUI, so the runtime's own mode is "none"); raises RuntimeSettingError."""
    from consisid_core.runtime import resolve_runtime

    return resolve_runtime(device=device, dtype=precision, attention=attention,
                           memory_mode="none" if memory_mode == AUTO else memory_mode,
                           weight_dtype=weight_dtype, compile=compile)


def face_runtime(device: str, precision: str):
    """The checked runtime setting of a Face Models Loader: EVA-CLIP runs in the chosen precision on its device."""
    from consisid_core.runtime import resolve_runtime

    return resolve_runtime(device=device, dtype=precision)


def _load_engine(settings: EngineSettings):
    """Load transformer, VAE, T5 and scheduler into RAM (never downloads); ComfyUI's memory manager moves them."""
    import consisid_core

    return consisid_core.load_engine(settings.path, runtime=settings.runtime, managed=True)


class ConsisIDModelLoader(io.ComfyNode):
    DISPLAY_NAME = "ConsisID DiT Loader"
    LABEL = label(DISPLAY_NAME, node_ids.MODEL_LOADER)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.MODEL_LOADER,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Loads a ConsisID model folder (CogVideoX-5B DiT with face modules, its VAE, T5 text encoder and "
                "scheduler) from models/consisid/. ComfyUI's memory manager loads each part to the GPU when its stage "
                "runs and evicts it like any other model; the loaded model is kept between runs (same settings: no "
                "reload)."
            ),
            inputs=[
                io.Combo.Input("model", options=model_folders.combo_names(), tooltip=MODEL_TOOLTIP),
                io.Combo.Input("precision", options=PRECISIONS, default="bf16", tooltip=(
                    "Weight and compute dtype. bf16 is what ConsisID was trained in (use it on GPUs that support "
                    "it); fp16 for older GPUs; fp32 doubles memory (CPU runs or debugging).")),
                io.Combo.Input("memory_mode", options=MEMORY_MODES, default=AUTO, tooltip=(
                    "auto: ComfyUI's memory manager decides, as for its own models (loads what fits, casts the "
                    "rest layer by layer; honours --lowvram, --novram, --reserve-vram). Overrides: none keeps T5, "
                    "DiT and VAE resident together (fastest, about 37 GB for 49 frames at 720x480); model_offload "
                    "unloads the other two before each stage (about 22 GB); sequential_offload loads each model "
                    "with a minimal resident budget, as --novram does (lowest memory, much slower). Combine with "
                    "VAE tiling in ConsisID Decode for the lowest peak.")),
                io.Combo.Input("attention", options=attention_backends(), default="sdpa", tooltip=(
                    "Attention backend. sdpa lets PyTorch choose its fastest kernel; sdpa_flash, sdpa_efficient and "
                    "sdpa_cudnn force one CUDA kernel; sdpa_math is the slow exact reference; sageattention and "
                    "flash_attn are listed when they import with this torch. On the CPU only sdpa and sdpa_math work; "
                    "sdpa_flash, sdpa_cudnn, sageattention and flash_attn need bf16 or fp16.")),
                io.Combo.Input("weight_dtype", options=WEIGHT_DTYPES, default="default", optional=True, tooltip=(
                    "Storage of the transformer blocks' weights. default: the precision above (12.4 GB in bf16). "
                    "fp8_e4m3fn: 8-bit weights with one scale per tensor, upcast per layer (7.7 GB, small "
                    "rounding differences). fp8_e4m3fn_fast: the same weights multiplied in fp8 (RTX 40xx, L4, "
                    "H100 or newer only).")),
                io.Combo.Input("compile", options=COMPILE_CHOICES, default="off", optional=True, tooltip=(
                    "blocks: torch.compile each transformer block (the first run compiles for a minute or more, "
                    "later runs are faster; needs triton on CUDA). Not with sequential_offload.")),
            ],
            outputs=[Sockets.Model.Output(
                "model", tooltip="The loaded ConsisID model, for Text Encode, Global Extractor, Sampler and Decode.")],
        )

    @classmethod
    def validate_inputs(cls, model) -> bool | str:
        """Refuse a missing or incomplete model folder before anything runs, naming the missing file."""
        from consisid_core.engine.files import resolve_model_folder
        from consisid_core.errors import ModelFilesError

        if model is None:  # wired from another node: checked when the node runs
            return True
        folder = model_folders.find_model(model)
        if folder is None:
            return f"{cls.LABEL}: {model_folders.missing_folder_message(model)}"
        try:
            resolve_model_folder(folder)
        except ModelFilesError as exc:
            return f"{cls.LABEL}: {exc}"
        return True

    @classmethod
    def execute(cls, model, precision, memory_mode, attention, weight_dtype="default", compile="off") -> io.NodeOutput:
        with reported_as(cls.LABEL):
            folder = model_folders.find_model(model)
            if folder is None:
                raise fail(cls.LABEL, model_folders.missing_folder_message(model))
            device = str(comfy_bridge.torch_device())
            runtime = _check_runtime(cls.LABEL, lambda: engine_runtime(device, precision, memory_mode, attention,
                                                                       weight_dtype, compile))  # before any load
            settings = EngineSettings(settings_path(folder), runtime, comfy_managed=memory_mode == AUTO)
            handle = REGISTRY.handle(settings, lambda: EngineHandle(settings, _load_engine))
            handle.get()
        return io.NodeOutput(handle)


def _check_runtime(node: str, resolve):
    """The resolved runtime setting; a choice that cannot run here is a node error naming `node`."""
    from consisid_core.runtime import RuntimeSettingError

    try:
        return resolve()
    except RuntimeSettingError as exc:
        raise fail(node, str(exc)) from exc


def _load_face_models(settings: FaceSettings):
    from consisid_core.face import load_face_models

    providers = ["CUDAExecutionProvider"] if settings.onnx_provider == "CUDA" else ["CPUExecutionProvider"]
    return load_face_models(
        settings.face_encoder_dir, runtime=settings.runtime, onnx_providers=providers,
        antelopev2_dir=settings.antelopev2_dir,
    )


class ConsisIDFaceModelsLoader(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Face Models Loader"
    LABEL = label(DISPLAY_NAME, node_ids.FACE_MODELS_LOADER)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.FACE_MODELS_LOADER,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Loads the face stack ConsisID needs from the model folder's face_encoder/: insightface antelopev2 "
                "(SCRFD detector + glintr100 ArcFace, also taken from models/insightface/models/antelopev2 when the "
                "model folder lacks it), RetinaFace, BiSeNet and the EVA02-CLIP-L visual tower. Nothing is downloaded."
            ),
            inputs=[
                io.Combo.Input("model", options=model_folders.combo_names(), tooltip=(
                    "The ConsisID model folder whose face_encoder/ holds the face weights "
                    "(EVA02_CLIP_L_336_psz14_s6B.pt, detection_Resnet50_Final.pth, parsing_bisenet.pth, "
                    "models/antelopev2/*.onnx).")),
                io.Combo.Input("onnx_provider", options=ONNX_PROVIDERS, default="CPU", tooltip=(
                    "Where onnxruntime runs antelopev2. CUDA needs the onnxruntime-gpu package; if CUDA is not "
                    "usable it falls back to CPU with a warning. Face detection runs once per photo, so CPU is fine.")),
                io.Combo.Input("device", options=FACE_DEVICES, default="default", tooltip=(
                    "Where RetinaFace, BiSeNet and EVA-CLIP run: ComfyUI's device (default) or the CPU (a few "
                    "seconds per photo, keeps about 1.5 GB of GPU memory free).")),
                io.Combo.Input("precision", options=PRECISIONS, default="bf16", tooltip=(
                    "EVA-CLIP dtype (bf16 as in the reference); the detectors and the face parser always run in fp32.")),
            ],
            outputs=[Sockets.FaceModels.Output(
                "face_models", tooltip="The face models, for Face Crop&Align and Local Extractor.")],
        )

    @classmethod
    def validate_inputs(cls, model) -> bool | str:
        """Refuse missing face weights before anything runs, listing each missing file and where it goes."""
        from consisid_core.face.weights import locate_face_weights
        from consisid_core.errors import ModelFilesError

        if model is None:
            return True
        dirs = model_folders.face_dirs(model)
        if dirs is None:
            return f"{cls.LABEL}: {model_folders.missing_folder_message(model)}"
        try:
            locate_face_weights(dirs[0], insightface_dirs=dirs[1])
        except ModelFilesError as exc:
            return f"{cls.LABEL}: {exc}"
        return True

    @classmethod
    def execute(cls, model, onnx_provider, device, precision) -> io.NodeOutput:
        with reported_as(cls.LABEL):
            from consisid_core.face.weights import locate_face_weights

            dirs = model_folders.face_dirs(model)
            if dirs is None:
                raise fail(cls.LABEL, model_folders.missing_folder_message(model))
            face_dir = dirs[0]
            ante_dir = locate_face_weights(face_dir, insightface_dirs=dirs[1]).antelopev2_dir  # as the badge finds it
            torch_device = "cpu" if device == "cpu" else str(comfy_bridge.torch_device())
            runtime = _check_runtime(cls.LABEL, lambda: face_runtime(torch_device, precision))
            settings = FaceSettings(settings_path(face_dir), None if ante_dir is None else str(ante_dir), onnx_provider,
                                    runtime)
            handle = REGISTRY.handle(settings, lambda: FaceModelsHandle(settings, _load_face_models))
            handle.get()
        return io.NodeOutput(handle)
