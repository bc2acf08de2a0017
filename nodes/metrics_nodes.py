"""ConsisID Eval Models Loader and ConsisID Identity Score: the paper's identity metrics inside a workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comfy_api.v0_0_2 import io
from consisid_core import choices, node_ids

from . import comfy_bridge, model_folders
from .errors import fail, label, reported_as
from .types import CATEGORY, Sockets

PROTOCOLS = list(choices.SCORE_PROTOCOLS)
DEVICES = ["cpu", "default"]
ONNX_PROVIDERS = [p.upper() for p in choices.ONNX_PROVIDERS]
NOT_MEASURED = -1.0
_LOADED: dict[tuple, object] = {}  # one set of scoring models kept between runs


def _eval_dirs(model: str) -> tuple[Path, Path | None, Path | None]:
    """face_encoder/ of the model folder, the first `consisid/eval` folder, and a shared buffalo_l if needed."""
    from consisid_core import catalog
    from consisid_core.metrics import files

    folder = model_folders.find_model(model)
    if folder is None:
        raise FileNotFoundError(model_folders.missing_folder_message(model))
    face_dir = folder / catalog.FACE_ENCODER_DIR
    roots = comfy_bridge.model_roots()
    eval_dir = next((r / files.EVAL_DIR for r in roots if (r / files.EVAL_DIR).is_dir()),
                    roots[-1] / files.EVAL_DIR if roots else None)
    own = face_dir / "models" / files.BUFFALO_L
    shared = [r / "models" / files.BUFFALO_L for r in comfy_bridge.insightface_roots()]
    buffalo = None if (own / files.BUFFALO_DET_FILE).is_file() else next(
        (d for d in shared if (d / files.BUFFALO_DET_FILE).is_file()), None)
    return face_dir, eval_dir, buffalo


class ConsisIDEvalModelsLoader(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Eval Models Loader"
    LABEL = label(DISPLAY_NAME, node_ids.EVAL_MODELS_LOADER)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.EVAL_MODELS_LOADER,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Loads the models that score identity as the ConsisID paper does: insightface buffalo_l (face "
                "detection and ArcFace), CurricularFace IR-101 (face_encoder/glint360k_curricular_face_r101_backbone.bin), "
                "torchvision's Inception-v3 file and CLIP ViT-B/32, from models/consisid/eval/ and the model folder. "
                "Nothing is downloaded."
            ),
            inputs=[
                io.Combo.Input("model", options=model_folders.combo_names(), tooltip=(
                    "The ConsisID model folder whose face_encoder/ holds glint360k_curricular_face_r101_backbone.bin "
                    "and (or models/insightface/models/buffalo_l/) the buffalo_l pack. Inception-v3 "
                    "(inception_v3_google-0cc3c7bd.pth) and clip-vit-base-patch32/ go in models/consisid/eval/.")),
                io.Combo.Input("device", options=DEVICES, default="cpu", tooltip=(
                    "Where IR-101, Inception and CLIP run: the CPU (about 10 s per video) or ComfyUI's device.")),
                io.Combo.Input("onnx_provider", options=ONNX_PROVIDERS, default="CPU", tooltip=(
                    "Where onnxruntime runs buffalo_l (CUDA needs onnxruntime-gpu; falls back to CPU with a "
                    "warning).")),
            ],
            outputs=[Sockets.EvalModels.Output("eval_models", tooltip="The scoring models, for ConsisID Identity Score.")],
        )

    @classmethod
    def validate_inputs(cls, model) -> bool | str:
        """Refuse missing scoring weights before anything runs, naming each missing file."""
        from consisid_core.errors import ModelFilesError
        from consisid_core.metrics import locate_eval_files

        if model is None:
            return True
        try:
            locate_eval_files(*_eval_dirs(model))
        except (ModelFilesError, FileNotFoundError) as exc:
            return f"{cls.LABEL}: {exc}"
        return True

    @classmethod
    def execute(cls, model, device, onnx_provider) -> io.NodeOutput:
        from consisid_core.metrics import load_eval_models

        with reported_as(cls.LABEL):
            face_dir, eval_dir, buffalo = _eval_dirs(model)
            torch_device = "cpu" if device == "cpu" else str(comfy_bridge.torch_device())
            key = (str(face_dir), str(eval_dir), str(buffalo), torch_device, onnx_provider)
            if key not in _LOADED:
                _LOADED.clear()
                providers = ["CUDAExecutionProvider"] if onnx_provider == "CUDA" else ["CPUExecutionProvider"]
                _LOADED[key] = load_eval_models(face_dir, eval_dir, torch_device, buffalo, onnx_providers=providers)
        return io.NodeOutput(_LOADED[key])


def _report(s, prompt_given: bool) -> str:
    lines = [f"protocol: {s.protocol}",
             f"FaceSim-Arc {s.facesim_arc:.4f}   FaceSim-Cur {s.facesim_cur:.4f}",
             f"CLIPScore {s.clipscore:.2f}" if s.clipscore is not None else
             ("CLIPScore: n/a (empty prompt)" if not prompt_given else "CLIPScore: n/a"),
             (f"FID {s.fid:.2f}" + (" (script's per-frame |a-b|^2)" if s.protocol == "consisid" else
                                    " (Frechet: frames vs reference face)")) if s.fid is not None else "FID: n/a (no face)",
             f"motion {s.motion:.2f} px/frame",
             f"faces in {len(s.face_frames)} of {len(s.per_frame['frame_index'])} scored frames"]
    missing = [int(i) for i, v in zip(s.per_frame["frame_index"], s.per_frame["facesim_arc"]) if np.isnan(v)]
    if missing:
        lines.append(f"no face in frames {missing}")
    return "\n".join(lines)


class ConsisIDIdentityScore(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Identity Score"
    LABEL = label(DISPLAY_NAME, node_ids.IDENTITY_SCORE)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.IDENTITY_SCORE,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Scores how well a video keeps the reference person's identity, with the ConsisID paper's metrics: "
                "FaceSim-Arc and FaceSim-Cur (cosine of face embeddings, 0..1, higher is better), CLIPScore (prompt "
                "match), a face FID (lower is better) and motion (mean optical flow, so a still video with a perfect "
                "face is visible). 16 frames are scored; the plot shows each frame's FaceSim and marks frames without "
                "a face."
            ),
            inputs=[
                Sockets.EvalModels.Input("eval_models", tooltip="From ConsisID Eval Models Loader."),
                io.Image.Input("frames", tooltip=(
                    "The video to score (e.g. ConsisID Decode's frames), at least 2 frames.")),
                io.Image.Input("reference", tooltip="The photo of the person (the first image if a batch is given)."),
                io.Combo.Input("protocol", options=PROTOCOLS, default="fixed", tooltip=(
                    "fixed: RGB frames to CLIP and a real Frechet distance. consisid: exactly the paper's scripts, "
                    "quirks included (BGR frames to CLIP, per-frame |a-b|^2 as 'FID'), to compare with published "
                    "numbers.")),
                io.String.Input("prompt", default="", multiline=True, optional=True, tooltip=(
                    "The video's prompt, for CLIPScore (truncated to 77 CLIP tokens). Empty: no CLIPScore.")),
            ],
            outputs=[
                io.Float.Output("facesim_arc", tooltip=(
                    "ArcFace (buffalo_l) cosine to the reference face, clipped at 0, mean over frames with a face "
                    "(0 if none).")),
                io.Float.Output("facesim_cur", tooltip=(
                    "CurricularFace IR-101 cosine to the reference face, clipped at 0, mean over frames with a face.")),
                io.Float.Output("clipscore", tooltip=(
                    "100 x CLIP cosine between frames and the prompt; -1 when no prompt was given.")),
                io.Float.Output("fid", tooltip=(
                    "Face FID (fixed: Frechet distance; consisid: the script's per-frame value); -1 when no frame had "
                    "a face.")),
                io.Float.Output("motion", tooltip=(
                    "Mean Farneback optical-flow magnitude between consecutive frames, in pixels.")),
                io.String.Output("report", tooltip="All scores as text."),
                io.Image.Output("plot", tooltip="Per-frame FaceSim-Arc/Cur plot; frames without a face are marked red."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, eval_models, frames, reference, protocol, prompt="") -> io.NodeOutput:
        import torch

        from consisid_core.metrics import score_video
        from consisid_core.metrics.plots import facesim_plot

        with reported_as(cls.LABEL):
            if eval_models is None:
                raise fail(cls.LABEL, "connect a ConsisID Eval Models Loader to eval_models.")
            ref = reference[0] if getattr(reference, "ndim", 0) == 4 else reference
            s = score_video(eval_models, frames, ref, prompt or None, protocol)
            text = _report(s, bool(prompt and prompt.strip()))
            plot = facesim_plot(s.per_frame, f"{protocol}: arc {s.facesim_arc:.3f}  cur {s.facesim_cur:.3f}")
        image = torch.from_numpy(plot.astype(np.float32) / 255.0).unsqueeze(0)
        values = (s.facesim_arc, s.facesim_cur, NOT_MEASURED if s.clipscore is None else s.clipscore,
                  NOT_MEASURED if s.fid is None else s.fid, s.motion)
        ui = {"text": [text]}
        preview = _save_preview(plot)
        if preview is not None:
            ui["images"] = [preview]
        return io.NodeOutput(*map(float, values), text, image, ui=ui)


def _save_preview(plot: np.ndarray) -> dict | None:
    """Write the plot to ComfyUI's temp folder so the node shows it (as PreviewImage does); None outside ComfyUI."""
    import uuid

    import cv2

    try:
        folder = Path(comfy_bridge.folder_paths().get_temp_directory())
        folder.mkdir(parents=True, exist_ok=True)
        name = f"consisid_facesim_{uuid.uuid4().hex[:10]}.png"
        if not cv2.imwrite(str(folder / name), plot[:, :, ::-1]):
            return None
    except (ImportError, OSError, AttributeError):
        return None
    return {"filename": name, "subfolder": "", "type": "temp"}
