"""prepare-data: clips -> cached VAE latents, T5 embeddings, identity features and latent face masks + manifest."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..output_paths import write_text_through_partial, write_through_partial
from ..engine.text import encode_prompt
from ..errors import ConsisIDError
from . import clips as clip_io
from .captions import caption_for, read_caption_table
from .face_track import detect_track, face_masks, reference_identities
from .losses import latent_mask
from .manifest import EMPTY_PROMPT, append_entry, check_settings, read_manifest

PREPARE_VERSION = 1


@dataclass
class PrepareOptions:
    stride: int = 3  # the paper samples every 3rd frame
    min_face_fraction: float = 0.5  # a clip needs a face in at least this share of the window's frames
    cross_faces: int = 2  # reference faces kept from outside the window (for the cross-face loss)
    mask: str = "parse"  # "parse" (BiSeNet face region, box fallback) or "box"
    face_selection: str | int = "largest"
    still_threshold: float = 0.5
    retry_skipped: bool = False


@dataclass
class Components:
    """What preparation runs: the VAE, T5 and the face models (the transformer is never loaded)."""

    vae: object
    tokenizer: object
    text_encoder: object
    faces: object
    info: object
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32


@dataclass
class PrepareReport:
    ok: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    already: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"prepared {len(self.ok)} clip(s), skipped {len(self.skipped)}, kept {len(self.already)} from an earlier run"]
        out += [f"  ok       {name}" for name in self.ok]
        out += [f"  skipped  {name}: {why}" for name, why in self.skipped.items()]
        return out


def _to_video_tensor(frames: np.ndarray, device, dtype) -> torch.Tensor:
    """[F, H, W, 3] uint8 -> [1, 3, F, H, W] in [-1, 1]."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1.0
    return video.unsqueeze(0).to(device, dtype)


@torch.inference_mode()
def encode_clip(components: Components, frames: np.ndarray) -> torch.Tensor:
    """VAE posterior parameters (mean | logvar) [1, 2C, T, h, w] of the window's frames."""
    encoded = components.vae.encode(_to_video_tensor(frames, components.device, components.dtype))
    return encoded.latent_dist.parameters.cpu()


@torch.inference_mode()
def encode_caption(components: Components, caption: str) -> torch.Tensor:
    return encode_prompt(components.tokenizer, components.text_encoder, caption, components.info.text_len,
                         components.device, components.dtype).cpu()


def _identity_tensors(prefix: str, identity) -> dict[str, torch.Tensor]:
    tensors = {f"{prefix}.id_cond": identity.id_cond.float().contiguous(),
               f"{prefix}.face": torch.from_numpy(np.ascontiguousarray(identity.face_image)),
               f"{prefix}.face_kps": torch.from_numpy(np.asarray(identity.face_kps, dtype=np.float32))}
    for j, hidden in enumerate(identity.id_vit_hidden):
        tensors[f"{prefix}.vit{j}"] = hidden.float().contiguous()
    return tensors


def prepare_clip(components: Components, source: clip_io.ClipSource, caption: str, options: PrepareOptions,
                 out_dir: Path) -> dict:
    """Process one clip into its cache file; raises ClipError with the reason when it cannot be used."""
    from safetensors.torch import save_file

    info = components.info
    frames = clip_io.read_frames(source)
    if len(frames) < 2 or clip_io.is_still(frames, options.still_threshold):
        raise clip_io.ClipError("a still image: its frames do not move (give a real clip)")
    window, stride = clip_io.choose_window(len(frames), info.native_frames, options.stride)
    h, w = info.native_height, info.native_width
    crops = [clip_io.center_crop(frames[i], h, w) for i in window]
    track = detect_track(components.faces, crops, options.face_selection)
    found = sum(face is not None for face in track)
    if found < max(1, int(np.ceil(options.min_face_fraction * len(window)))):
        raise clip_io.ClipError(f"no usable face in enough frames ({found} of {len(window)} sampled frames have one)")
    masks, fallbacks = face_masks(components.faces, crops, track, options.mask)
    small_masks = np.stack([clip_io.resize(m, h, w) for m in masks])
    latent_t = info.latent_frames(info.native_frames)
    mask_latent = latent_mask(torch.from_numpy(small_masks), latent_t, h // info.vae_spatial, w // info.vae_spatial)

    middle = len(window) // 2
    inside_order = sorted(range(len(window)), key=lambda i: (abs(i - middle), i))
    inside_order = [i for i in inside_order if track[i] is not None]
    inside = reference_identities(components.faces, crops, inside_order, 1, options.face_selection)
    if not inside:
        raise clip_io.ClipError("the face pipeline could not align a reference face in any frame of the window")
    outside_idx = clip_io.outside_window(len(frames), window, options.cross_faces * 3)
    outside_crops = [clip_io.center_crop(frames[i], h, w) for i in outside_idx]
    outside = reference_identities(components.faces, outside_crops, list(range(len(outside_idx))), options.cross_faces,
                                   options.face_selection)

    video = np.stack([clip_io.resize(c, h, w) for c in crops])
    tensors = {"latents": encode_clip(components, video).contiguous(), "mask": mask_latent.contiguous(),
               "prompt_embeds": encode_caption(components, caption).contiguous()}
    refs = []
    for k, (i, identity) in enumerate(inside):
        tensors.update(_identity_tensors(f"ref{k}", identity))
        refs.append({"key": f"ref{k}", "frame": int(window[i]), "inside": True})
    for k, (i, identity) in enumerate(outside, start=len(refs)):
        tensors.update(_identity_tensors(f"ref{k}", identity))
        refs.append({"key": f"ref{k}", "frame": int(outside_idx[i]), "inside": False})
    rel = Path("clips") / f"{source.clip_id}.safetensors"
    tmp = out_dir / rel.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, out_dir / rel)
    return {"id": source.clip_id, "status": "ok", "file": rel.as_posix(), "source": str(source.path), "caption": caption,
            "frames": [int(i) for i in window], "stride": stride, "clip_frames": int(len(frames)), "refs": refs,
            "face_frames": int(found), "mask_fallbacks": int(fallbacks)}


def clip_sources(clips_dir: Path) -> list[clip_io.ClipSource]:
    """The clip candidates of `clips_dir`; a folder with none is refused saying what it should hold."""
    sources = clip_io.list_clips(Path(clips_dir))
    if not sources:
        raise ConsisIDError(f"--clips {clips_dir} holds no clips: put mp4/webm/mov files or folders of frames "
                            "(one person each) in it")
    return sources


def prepare_dataset(components: Components, clips_dir: Path, out_dir: Path, captions: Path | None = None,
                    options: PrepareOptions | None = None, model_id: str = "",
                    log: Callable[[str], None] = print) -> PrepareReport:
    """Prepare every clip of `clips_dir` into `out_dir` (resumable: clips already in the manifest are kept)."""
    options = options or PrepareOptions()
    out_dir = Path(out_dir)
    table = read_caption_table(captions)  # a bad --captions file stops here, before anything is written
    sources = clip_sources(Path(clips_dir))
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    info = components.info
    check_settings(out_dir, {"model": model_id, "height": info.native_height, "width": info.native_width,
                             "frames": info.native_frames, "stride": options.stride, "mask": options.mask,
                             "dtype": str(components.dtype).replace("torch.", ""), "version": PREPARE_VERSION})
    if not (out_dir / EMPTY_PROMPT).is_file():
        from safetensors.torch import save_file

        empty = {"prompt_embeds": encode_caption(components, "").contiguous()}
        write_through_partial(out_dir / EMPTY_PROMPT, lambda partial: save_file(empty, str(partial)))
    done = {}
    for entry in read_manifest(out_dir):
        done[entry["id"]] = entry
    sidecar_dir = captions if captions is not None and Path(captions).is_dir() else None
    report = PrepareReport()
    for source in sources:
        previous = done.get(source.clip_id)
        if previous is not None and (previous["status"] == "ok" and (out_dir / previous["file"]).is_file()
                                     or previous["status"] == "skipped" and not options.retry_skipped):
            report.already.append(source.clip_id)
            continue
        try:
            caption = caption_for(source, table, sidecar_dir)
            if source.kind == "image":
                clip_io.read_frames(source)  # raises: a still image is not a clip
            if caption is None:
                raise clip_io.ClipError(f"no caption: add {source.clip_id}.txt beside it or a row in the --captions CSV")
            entry = prepare_clip(components, source, caption, options, out_dir)
        except clip_io.ClipError as exc:
            entry = {"id": source.clip_id, "status": "skipped", "reason": str(exc), "source": str(source.path)}
        except Exception as exc:  # noqa: BLE001 - one bad clip must never stop the others
            entry = {"id": source.clip_id, "status": "skipped", "source": str(source.path),
                     "reason": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
        append_entry(out_dir, entry)
        if entry["status"] == "ok":
            report.ok.append(source.clip_id)
            log(f"ok       {source.clip_id} ({entry['face_frames']}/{len(entry['frames'])} frames with a face, "
                f"{len(entry['refs']) - 1} cross-face reference(s))")
        else:
            report.skipped[source.clip_id] = entry["reason"]
            log(f"skipped  {source.clip_id}: {entry['reason']}")
    write_text_through_partial(out_dir / "report.txt", "\n".join(report.lines()) + "\n", overwrite=True)
    return report
