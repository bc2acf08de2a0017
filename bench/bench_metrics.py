"""Benchmark: seconds per 49-frame video for each identity metric, ours vs the ConsisID eval scripts' chain.

Both run in one invocation on the same full-size random-weight files in the official formats (IR-101,
torchvision's Inception-v3 file, CLIP ViT-B/32; buffalo_l is a tiny random ONNX pair, run by insightface in both
chains). The reference chain is the scripts' logic: insightface FaceAnalysis, one frame at a time through
IR-101 and torchvision's `inception_v3(weights=DEFAULT)`, the per-frame `calculate_fid` (2048x2048 covariance
and eigh), `CLIPProcessor` + `CLIPModel`. Our IR-101 module stands in for TFace's (same layers, parity tested).

Needs the reference environment (torchvision):
    .venv-ref/bin/python bench/bench_metrics.py [--frames 49] [--threads 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_common import REPO  # noqa: E402,F401  (puts the repository root on sys.path)
PROMPT = "The video shows a woman in an orange space suit smiling in front of a flag; the camera slowly moves closer."


def make_video(frames: int):
    """A slow zoom-and-pan over the astronaut photo at ConsisID's 720x480."""
    import cv2
    import numpy as np
    import skimage.data

    photo = skimage.data.astronaut()
    out = []
    for i in range(frames):
        w = int(480 - 96 * i / max(frames - 1, 1))
        x0 = int(16 + 40 * i / max(frames - 1, 1))
        out.append(cv2.resize(photo[8:8 + w * 2 // 3, x0:x0 + w], (720, 480), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def timed(fn, repeat: int, label: str = ""):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    if label:
        print(f"  {label}: {best:.2f}s", flush=True)
    return best, value


def ours(model_dir: Path, video, repeat: int) -> dict:

    from consisid_core.metrics import load_eval_models, score_video
    from consisid_core.metrics import fid as fid_mod
    from consisid_core.metrics.faces import find_scoring_face
    from consisid_core.metrics.motion import flow_magnitudes
    from consisid_core.metrics.protocol import clip_frame_indices, face_frame_indices
    from consisid_core.metrics.score import curricular_embeddings

    t_load, m = timed(lambda: load_eval_models(model_dir), 1)
    photo = __import__("skimage.data").data.astronaut()
    idx = face_frame_indices(len(video), "consisid")
    frames = [video[i] for i in idx]
    res = {"load": t_load}
    res["faces (detect+align+ArcFace)"] = lambda: [find_scoring_face(m.detector, m.recognizer, f) for f in [photo, *frames]]
    crops = [f.crop_rgb for f in res["faces (detect+align+ArcFace)"]() if f is not None]
    res["FaceSim-Cur (IR-101)"] = lambda: curricular_embeddings(m.curricular, crops)

    def fid():
        feats = fid_mod.inception_features(m.inception, crops)
        return [fid_mod.pairwise_fid(feats[0], f) for f in feats[1:]]
    res["FID (Inception + per-frame)"] = fid
    clip_frames = [video[i][:, :, ::-1].copy() for i in clip_frame_indices(len(video), "consisid")]
    res["CLIPScore"] = lambda: m.clip.scores(clip_frames, PROMPT)
    res["motion (Farneback, all frames)"] = lambda: flow_magnitudes(list(video))
    res["score_video consisid (all metrics)"] = lambda: score_video(m, video, photo, PROMPT, "consisid")
    res["score_video fixed (all metrics)"] = lambda: score_video(m, video, photo, PROMPT, "fixed")
    return res


def reference(model_dir: Path, video, repeat: int) -> dict:
    import cv2
    import numpy as np
    import torch
    from insightface.app import FaceAnalysis
    from insightface.utils import face_align
    from PIL import Image
    from torchvision import models, transforms
    from torchvision.models._api import WeightsEnum
    from transformers import CLIPModel, CLIPProcessor

    from consisid_core.metrics.ir101 import load_ir_backbone

    face_dir, eval_dir = model_dir / "face_encoder", model_dir.parent / "eval"
    inception_file = eval_dir / "inception_v3_google-0cc3c7bd.pth"

    def load():
        app = FaceAnalysis(root=str(face_dir), providers=["CPUExecutionProvider"])
        app.prepare(ctx_id=0, det_size=(320, 320))
        cur = load_ir_backbone(face_dir / "glint360k_curricular_face_r101_backbone.bin")
        WeightsEnum.get_state_dict = lambda self, *a, **k: torch.load(inception_file, map_location="cpu", weights_only=True)
        inc = models.inception_v3(weights=models.Inception_V3_Weights.DEFAULT)
        inc.fc = torch.nn.Identity()
        clip = CLIPModel.from_pretrained(eval_dir / "clip-vit-base-patch32")
        proc = CLIPProcessor.from_pretrained(eval_dir / "clip-vit-base-patch32")
        return app, cur, inc.eval(), clip, proc
    t_load, (app, cur_model, inc, clip, proc) = timed(load, 1)
    photo = __import__("skimage.data").data.astronaut()
    idx = np.linspace(0, len(video) - 1, 16, dtype=int)
    frames = [video[i] for i in idx]

    def process(rgb):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        info = app.get(bgr)
        shift = np.zeros(2)
        if not info:
            h, w = bgr.shape[:2]
            info = app.get(cv2.copyMakeBorder(bgr, int(h * .25), int(h * .25), int(w * .25), int(w * .25),
                                              cv2.BORDER_CONSTANT, value=(128, 128, 128)))
            shift = np.array([int(w * .25), int(h * .25)])
            if not info:
                return None
        face = sorted(info, key=lambda x: (x["bbox"][2] - x["bbox"][0]) * (x["bbox"][3] - x["bbox"][1]))[-1]
        crop = face_align.norm_crop(bgr, landmark=face["kps"] - shift, image_size=224)
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), face["embedding"]

    res = {"load": t_load}
    res["faces (detect+align+ArcFace)"] = lambda: [process(f) for f in [photo, *frames]]
    crops = [f[0] for f in res["faces (detect+align+ArcFace)"]() if f is not None]

    @torch.no_grad()
    def cur():
        out = []
        for c in crops:
            x = torch.from_numpy(np.transpose(cv2.resize(c, (112, 112)), (2, 0, 1))).unsqueeze(0).float()
            e = cur_model(x.div_(255).sub_(0.5).div_(0.5)).numpy()[0]
            out.append(e / np.linalg.norm(e))
        return out
    res["FaceSim-Cur (IR-101)"] = cur

    def activations(c):
        x = transforms.ToTensor()(transforms.Resize((299, 299))(Image.fromarray(c))).unsqueeze(0)
        with torch.no_grad():
            a = inc(x).numpy()
        return np.repeat(a, 2, axis=0)

    def calculate_fid(r, f):
        r, f = torch.tensor(r), torch.tensor(f)
        s1, s2 = torch.cov(r.T), torch.cov(f.T)
        w, v = torch.linalg.eigh(s1.mm(s2))
        covmean = (v * torch.sqrt(torch.clamp(w, min=0))).mm(v.T)
        return (torch.sum((r.mean(0) - f.mean(0)) ** 2) + torch.trace(s1 + s2 - 2 * covmean)).item()

    def fid():
        real = activations(crops[0])
        return [calculate_fid(real, activations(c)) for c in crops[1:]]
    res["FID (Inception + per-frame)"] = fid

    clip_frames = [video[int(i * len(video) / 16)][:, :, ::-1].copy() for i in range(16)]

    @torch.no_grad()
    def clipscore():
        inputs = proc(text=PROMPT, images=clip_frames, return_tensors="pt", padding=True, truncation=True)
        return clip(**inputs).logits_per_image.mean().item()
    res["CLIPScore"] = clipscore
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from consisid_core.demo.metrics_models import write_eval_models

    video = make_video(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_eval_models(Path(tmp), full_clip=True)
        mine = ours(model_dir, video, args.repeat)
        ref = reference(model_dir, video, args.repeat)
        times: dict[str, tuple] = {}
        for key, fn in mine.items():  # ours and the reference alternate, so a busy machine slows both alike
            if key == "load":
                times[key] = (fn, ref["load"])
                continue
            t_ours = timed(fn, args.repeat, f"ours {key}")[0]
            t_ref = timed(ref[key], args.repeat, f"reference {key}")[0] if key in ref else None
            times[key] = (t_ours, t_ref)
        values = mine["score_video consisid (all metrics)"]()
    print(f"\nseconds per {args.frames}-frame 720x480 video, CPU, {args.threads} threads (best of {args.repeat})")
    print(f"{'metric':36s} {'ours':>8s} {'reference':>10s} {'ratio':>7s}")
    for key, (t_ours, t_ref) in times.items():
        ratio = f"{t_ours / t_ref:7.2f}" if t_ref else "      -"
        print(f"{key:36s} {t_ours:8.2f} {t_ref if t_ref is not None else float('nan'):10.2f} {ratio}")
    total_ref = sum(t for k, (_, t) in times.items() if k != "load" and t is not None)
    print(f"{'reference chain, all four metrics':36s} {'':8s} {total_ref:10.2f}")
    print("ratio score_video(consisid, incl. motion) / reference chain: "
          f"{times['score_video consisid (all metrics)'][0] / total_ref:.2f}")
    print("our values (arc, cur, fid, clip, motion):", ", ".join(
        f"{v:.4g}" for v in (values.facesim_arc, values.facesim_cur, values.fid, values.clipscore, values.motion)))

if __name__ == "__main__":
    main()
