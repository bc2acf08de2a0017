"""prepare-data on synthetic clips: what is cached, the report for bad clips, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from consisid_core.training import clips as clip_io
from consisid_core.training.manifest import read_manifest, usable
from consisid_core.training.prepare import PrepareOptions, encode_clip, prepare_dataset


def test_bad_clips_are_reported_and_the_good_one_cached(tmp_path, components, clips_dir):
    report = prepare_dataset(components, clips_dir, tmp_path, options=PrepareOptions(mask="box"), log=lambda s: None)
    assert report.ok == ["astronaut", "frames_clip"]
    reasons = report.skipped
    assert set(reasons) == {"coffee", "short", "corrupt", "still", "photo"}
    assert "no usable face" in reasons["coffee"]
    assert "too short" in reasons["short"] and "6 frames" in reasons["short"]
    assert "cannot be decoded" in reasons["corrupt"] or "no decodable frame" in reasons["corrupt"]
    assert "still image" in reasons["still"] and "still image" in reasons["photo"]
    text = (tmp_path / "report.txt").read_text()
    for name in reasons:
        assert f"skipped  {name}:" in text
    entries = {e["id"]: e for e in read_manifest(tmp_path)}
    assert entries["coffee"]["status"] == "skipped" and entries["astronaut"]["status"] == "ok"


def test_cache_holds_what_training_needs(prepared, components, good_clip_dir):
    (entry,) = usable(prepared)
    info = components.info
    tensors = load_file(str(prepared / entry["file"]))
    latent_t = info.latent_frames(info.native_frames)
    h, w = info.native_height // info.vae_spatial, info.native_width // info.vae_spatial
    assert tensors["latents"].shape == (1, 2 * info.latent_channels, latent_t, h, w)
    assert tensors["mask"].shape == (latent_t, h, w) and 0 < tensors["mask"].mean() < 1
    assert tensors["prompt_embeds"].shape == (1, info.text_len, info.text_embed_dim)
    # the window: native frame count at stride 3, centred in the 40-frame clip
    assert entry["stride"] == 3 and entry["frames"] == [7 + 3 * i for i in range(9)]
    # cached latents are the VAE's posterior of the window, resized and centre-cropped
    frames = clip_io.read_frames(clip_io.ClipSource(good_clip_dir / "astronaut.mp4", "video"))
    window = np.stack([clip_io.resize(clip_io.center_crop(frames[i], 32, 48), 32, 48) for i in entry["frames"]])
    torch.testing.assert_close(tensors["latents"], encode_clip(components, window))
    # the cached text is T5 of the sidecar caption
    assert entry["caption"] == (good_clip_dir / "astronaut.txt").read_text()


def test_cross_face_references_come_from_outside_the_window(prepared):
    (entry,) = usable(prepared)
    window = entry["frames"]
    inside = [r for r in entry["refs"] if r["inside"]]
    outside = [r for r in entry["refs"] if not r["inside"]]
    assert len(inside) == 1 and window[0] <= inside[0]["frame"] <= window[-1]
    assert outside and all(r["frame"] < window[0] or r["frame"] > window[-1] for r in outside)
    tensors = load_file(str(prepared / entry["file"]))
    for ref in entry["refs"]:
        assert tensors[f"{ref['key']}.face"].shape == (512, 512, 3) and tensors[f"{ref['key']}.face"].dtype == torch.uint8
        assert tensors[f"{ref['key']}.id_cond"].shape[0] == 1


def test_resume_keeps_finished_clips_and_refuses_other_settings(tmp_path, components, good_clip_dir):
    first = prepare_dataset(components, good_clip_dir, tmp_path, options=PrepareOptions(mask="box"), log=lambda s: None)
    stamp = (tmp_path / "clips" / "astronaut.safetensors").stat().st_mtime_ns
    # an interrupted write leaves half a line: it is ignored
    with open(tmp_path / "manifest.jsonl", "a") as handle:
        handle.write('{"id": "half')
    again = prepare_dataset(components, good_clip_dir, tmp_path, options=PrepareOptions(mask="box"), log=lambda s: None)
    assert first.ok == ["astronaut"] and again.ok == [] and again.already == ["astronaut"]
    assert (tmp_path / "clips" / "astronaut.safetensors").stat().st_mtime_ns == stamp
    from consisid_core.training.manifest import DatasetError

    with pytest.raises(DatasetError, match="stride"):
        prepare_dataset(components, good_clip_dir, tmp_path, options=PrepareOptions(mask="box", stride=2), log=lambda s: None)
    assert json.loads((tmp_path / "dataset.json").read_text())["stride"] == 3


def test_window_and_outside_frames():
    window, stride = clip_io.choose_window(40, 9, 3)
    assert stride == 3 and window == list(range(7, 32, 3))
    assert clip_io.choose_window(12, 9, 3)[1] == 1  # short clip: the stride is lowered
    with pytest.raises(clip_io.ClipError, match="too short"):
        clip_io.choose_window(8, 9, 3)
    outside = clip_io.outside_window(40, window, 4)
    assert len(outside) == 4 and all(i <= 4 or i >= 34 for i in outside)


def test_parsed_masks_fall_back_to_the_face_box(haar_face_models, astronaut, pan_zoom):
    from consisid_core.training.face_track import box_mask, detect_track, face_masks, parsed_mask

    frames = [clip_io.center_crop(f, 32, 48) for f in pan_zoom(astronaut, 3)]
    track = detect_track(haar_face_models, frames)
    assert all(face is not None for face in track)
    masks, fallbacks = face_masks(haar_face_models, frames, track, "parse")
    assert masks.shape == (3, *frames[0].shape[:2]) and masks.min() >= 0 and masks.max() == 1
    for i, face in enumerate(track):
        parsed = parsed_mask(haar_face_models, frames[i], face)
        expected = box_mask(frames[i].shape[:2], face.bbox) if parsed is None else parsed
        assert np.array_equal(masks[i], expected)
    assert 0 <= fallbacks <= 3
    boxes, _ = face_masks(haar_face_models, frames, [track[0], None, track[2]], "box")
    assert np.array_equal(boxes[1], boxes[0])  # a frame without a face takes the nearest detected frame's mask


def test_captions_from_csv_sidecar_or_frames_folder(tmp_path):
    from consisid_core.errors import ConsisIDError
    from consisid_core.training.captions import caption_for, read_caption_table

    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "b.mp4").write_bytes(b"")
    (tmp_path / "b.txt").write_text("b from its sidecar\n")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "caption.txt").write_text("c from its folder")
    table_file = tmp_path / "captions.csv"
    table_file.write_text('clip,caption\na.mp4,"a, from the CSV"\n', encoding="utf-8")
    table = read_caption_table(table_file)
    a, b, c = (clip_io.ClipSource(tmp_path / n, k) for n, k in (("a.mp4", "video"), ("b.mp4", "video"), ("c", "frames")))
    assert caption_for(a, table, None) == "a, from the CSV"
    assert caption_for(b, table, None) == "b from its sidecar"
    assert caption_for(c, table, None) == "c from its folder"
    assert caption_for(a, {}, None) is None
    bad = tmp_path / "bad.csv"
    bad.write_text("name;text\nx;y\n")
    with pytest.raises(ConsisIDError, match="clip column"):
        read_caption_table(bad)


def test_a_bad_captions_file_or_no_clips_leave_no_dataset_folder(tmp_path, components, good_clip_dir):
    from consisid_core.errors import ConsisIDError
    from consisid_core.text_input import TextInputError

    bad = tmp_path / "captions.csv"
    bad.write_bytes("clip,caption\nastronaut.mp4,un caf\xe9\n".encode("latin-1"))
    with pytest.raises(TextInputError, match="captions.csv is not UTF-8: line 2 has byte 0xe9"):
        prepare_dataset(components, good_clip_dir, tmp_path / "out", bad, log=lambda s: None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConsisIDError, match="holds no clips"):
        prepare_dataset(components, tmp_path / "empty", tmp_path / "out", log=lambda s: None)
    assert not (tmp_path / "out").exists()
