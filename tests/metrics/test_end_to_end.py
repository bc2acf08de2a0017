"""Full-size random scoring models in their official files: score_video against an independent chain built on
insightface's own FaceAnalysis, the evaluate command, and the two nodes."""

from __future__ import annotations

import csv
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from consisid_core.cli import main as cli_main
from consisid_core.metrics import score_video

from metrics_fixtures import pan

PROMPT = "A man in a white space suit stands in front of an American flag, the camera pans slowly"


def _reference_chain(models, face_dir, frames, photo, prompt):
    """The eval scripts' steps restated on insightface FaceAnalysis (root=face_encoder, det_size 320) and on
    torch/PIL/cv2 calls of their own; the networks are the loaded ones (their parity is tested apart)."""
    from insightface.app import FaceAnalysis
    from insightface.utils import face_align
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    app = FaceAnalysis(root=str(face_dir), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=0, det_size=(320, 320))

    def process(rgb):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        faces = app.get(bgr)
        shift = np.zeros(2)
        if not faces:
            h, w = bgr.shape[:2]
            faces = app.get(cv2.copyMakeBorder(bgr, int(h * .25), int(h * .25), int(w * .25), int(w * .25),
                                               cv2.BORDER_CONSTANT, value=(128, 128, 128)))
            shift = np.array([int(w * .25), int(h * .25)])
        face = sorted(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))[-1]
        crop = cv2.cvtColor(face_align.norm_crop(bgr, landmark=face.kps - shift, image_size=224), cv2.COLOR_BGR2RGB)
        return crop, face.embedding

    def cur(crop):
        x = torch.from_numpy(np.transpose(cv2.resize(crop, (112, 112)), (2, 0, 1))).unsqueeze(0).float()
        e = models.curricular(x.div(255).sub(0.5).div(0.5))[0].numpy()
        return e / np.linalg.norm(e)

    def inception(crop):
        x = torch.from_numpy(np.array(Image.fromarray(crop).resize((299, 299), Image.BILINEAR))).permute(2, 0, 1)
        return models.inception(x.unsqueeze(0).float() / 255)[0].numpy()

    def cos(a, b):
        return max(0.0, float(torch.nn.functional.cosine_similarity(torch.tensor(a), torch.tensor(b), dim=-1)))

    with torch.no_grad():
        ref_crop, ref_arc = process(photo)
        ref_cur, ref_inc = cur(ref_crop), inception(ref_crop)
        arc, cr, fid, memo = [], [], [], {}
        for i in np.linspace(0, len(frames) - 1, 16, dtype=int):
            if i not in memo:  # the script reads a repeated frame again; same values
                crop, emb = process(frames[i])
                memo[i] = (cos(ref_arc, emb), cos(ref_cur, cur(crop)), float(((ref_inc - inception(crop)) ** 2).sum()))
            for values, v in zip((arc, cr, fid), memo[i]):
                values.append(v)
        folder = models.files.clip_dir
        processor = CLIPProcessor.from_pretrained(folder, image_processor=CLIPImageProcessorPil.from_pretrained(folder))
        clip_frames = [np.ascontiguousarray(frames[int(i * len(frames) / 16)][:, :, ::-1]) for i in range(16)]
        inputs = processor(text=prompt, images=clip_frames, return_tensors="pt", padding=True, truncation=True)
        clip = models.clip.model(**inputs).logits_per_image.mean().item()
    return np.array(arc), np.array(cr), np.array(fid), clip


def test_score_video_equals_the_script_chain(eval_models, eval_model_dir, photos):
    frames = pan(photos["astronaut"], 6)
    got = score_video(eval_models, frames, photos["astronaut"], PROMPT, protocol="consisid")
    arc, cur, fid, clip = _reference_chain(eval_models, eval_model_dir / "face_encoder", frames, photos["astronaut"], PROMPT)
    diffs = {"arc": np.abs(got.per_frame["facesim_arc"] - arc).max(), "cur": np.abs(got.per_frame["facesim_cur"] - cur).max(),
             "fid_rel": (np.abs(got.per_frame["fid"] - fid) / fid).max(), "clip": abs(got.clipscore - clip)}
    print("score_video vs script chain, max |diff| per frame:", {k: f"{v:.1e}" for k, v in diffs.items()})
    assert len(got.face_frames) == 16  # the random detector finds a "face" everywhere
    assert diffs["arc"] < 1e-5 and diffs["cur"] < 5e-5 and diffs["fid_rel"] < 1e-4 and diffs["clip"] < 1e-4
    assert fid.min() > 1e-3 * np.abs(got.reference_feature).max()  # the random Inception tells the frames apart
    assert got.facesim_arc == pytest.approx(arc.mean(), abs=1e-5) and got.fid == pytest.approx(fid.mean(), rel=1e-4)


def _write_mp4(path, frames):
    import imageio.v2 as imageio

    imageio.mimwrite(path, list(frames), fps=8, codec="libx264", quality=9, macro_block_size=1)


def test_evaluate_command(eval_model_dir, photos, tmp_path, capsys):
    faces = tmp_path / "faces"
    faces.mkdir()
    Image.fromarray(photos["astronaut"]).save(faces / "astro.png")
    videos = tmp_path / "videos"
    (videos / "astro--1").mkdir(parents=True)  # eval_all_in_once's "{img_name}--{index}" folders
    _write_mp4(videos / "astro--1" / "clip.mp4", pan(photos["astronaut"], 4))
    _write_mp4(videos / "astro_seed2.mp4", pan(photos["astronaut"], 3, step=16))
    (tmp_path / "prompts.csv").write_text(f"video,prompt\nclip,{PROMPT}\n", encoding="utf-8")
    out = tmp_path / "scores.csv"
    code = cli_main(["evaluate", "--videos", str(videos), "--faces", str(faces), "--prompts", str(tmp_path / "prompts.csv"),
                     "--model", str(eval_model_dir), "--out", str(out), "--plot", str(tmp_path / "plots")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["output_path"].split(os.sep)[-1] for r in rows] == ["clip.mp4", "astro_seed2.mp4", "Average", "SetFID"]
    assert rows[0]["clip_score"] and not rows[1]["clip_score"]  # prompt only for the first video
    assert float(rows[2]["arc_score"]) == pytest.approx((float(rows[0]["arc_score"]) + float(rows[1]["arc_score"])) / 2)
    assert float(rows[3]["fid_score"]) > 0
    assert "FaceSim-Arc" in printed and "ConsisID (paper)" in printed and "0.58" in printed
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["astro_seed2.png", "clip.png"]


def test_evaluate_command_bad_inputs(eval_model_dir, photos, tmp_path, capsys):
    (tmp_path / "faces").mkdir()
    Image.fromarray(photos["astronaut"]).save(tmp_path / "faces" / "bob.png")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "alice.mp4").write_text("not a video")
    assert cli_main(["evaluate", "--videos", str(tmp_path / "v"), "--faces", str(tmp_path / "faces"),
                     "--model", str(eval_model_dir)]) == 2
    assert "No face photo in" in capsys.readouterr().err
    assert cli_main(["evaluate", "--videos", str(tmp_path / "v"), "--faces", str(tmp_path / "faces" / "bob.png"),
                     "--model", str(eval_model_dir), "--out", str(tmp_path / "s.csv")]) == 2
    assert "could not be read as a video" in capsys.readouterr().err
    assert cli_main(["evaluate", "--videos", str(tmp_path / "v"), "--faces", str(tmp_path / "faces" / "bob.png"),
                     "--model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "glint360k_curricular_face_r101_backbone.bin" in err and "buffalo_l" in err and "Traceback" not in err


@pytest.fixture
def comfy_with_eval(eval_model_dir, tmp_path):
    import comfy_stub
    from support.pack import import_pack, pack_module

    base = tmp_path / "ComfyUI"
    model = base / "models" / "consisid" / "ConsisID-preview"
    model.mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    os.symlink(eval_model_dir / "face_encoder", model / "face_encoder")
    os.symlink(eval_model_dir.parent / "eval", base / "models" / "consisid" / "eval")
    comfy_stub.activate(base)
    import_pack()
    pack_module("nodes.comfy_bridge").register_model_folders()
    yield pack_module("nodes")  # the node classes by id (NODES_BY_ID); ComfyUI gets them from comfy_entrypoint()
    comfy_stub.deactivate()


def test_nodes_score_a_video(comfy_with_eval, photos):
    pack = comfy_with_eval
    loader = pack.NODES_BY_ID["ConsisIDEvalModelsLoader"]
    assert loader.validate_inputs("ConsisID-preview") is True
    (models,) = loader.execute("ConsisID-preview", "cpu", "CPU")
    video = torch.from_numpy(pan(photos["astronaut"], 3)).float() / 255
    ref = torch.from_numpy(photos["astronaut"]).float().unsqueeze(0) / 255
    out = pack.NODES_BY_ID["ConsisIDIdentityScore"].execute(models, video, ref, "fixed", "")
    arc, cur, clip, fid, motion, text, plot = out.result
    assert all(isinstance(v, float) for v in (arc, cur, clip, fid, motion))
    assert clip == -1.0 and 0.0 <= arc <= 1.0 and fid >= 0 and "CLIPScore: n/a" in text
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and plot.dtype == torch.float32 and out.ui["text"] == [text]
    import folder_paths

    shown = out.ui["images"][0]
    saved = cv2.imread(os.path.join(folder_paths.get_temp_directory(), shown["filename"]))[:, :, ::-1]
    np.testing.assert_array_equal(saved, np.rint(plot[0].numpy() * 255).astype(np.uint8))


def test_nodes_explain_missing_models(comfy_with_eval, tmp_path):
    pack = comfy_with_eval
    os.remove(tmp_path / "ComfyUI" / "models" / "consisid" / "eval")
    message = pack.NODES_BY_ID["ConsisIDEvalModelsLoader"].validate_inputs("ConsisID-preview")
    assert "ConsisID Eval Models Loader" in message and "inception_v3_google-0cc3c7bd.pth" in message
    assert "clip-vit-base-patch32" in message and "download.pytorch.org" in message
