"""Stand-ins for the core and VHS nodes our workflows end in, with the real 0.8 / VHS input names (and API: LoadImage
and VHS are V1 classes, CreateVideo, SaveVideo and PrimitiveStringMultiline V3 nodes, as in ComfyUI 0.8).

LoadImage reads from the input folder like ComfyUI's; CreateVideo/SaveVideo and VHS_VideoCombine write an
mp4 (imageio-ffmpeg, through consisid_core.video) so tests can count the frames of a real file. History-style
ui dicts match the real ones (`images` + `animated` for SaveVideo, `gifs` for VHS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

import comfy_stub

io, ui = comfy_stub.api_module().io, comfy_stub.api_module().ui  # the V3 schema, as ComfyUI 0.8's own video nodes use


def _write_mp4(path: str, frames, fps: float) -> None:
    from consisid_core.video import write_mp4

    write_mp4(frames, path, fps=fps)


def count_frames(path: str) -> int:
    """Decoded frame count of a video file."""
    from consisid_core.video import count_frames as count

    return count(path)


class LoadImage:
    @classmethod
    def INPUT_TYPES(cls):
        import folder_paths

        files = sorted(os.listdir(folder_paths.get_input_directory()))
        return {"required": {"image": (files, {"image_upload": True})}}

    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"

    def load_image(self, image):
        import folder_paths
        import torch
        from PIL import Image, ImageOps

        with Image.open(folder_paths.get_annotated_filepath(image)) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
            array = np.asarray(rgb).astype(np.float32) / 255.0
        tensor = torch.from_numpy(array)[None]
        return (tensor, torch.zeros((1, array.shape[0], array.shape[1]), dtype=torch.float32))


@dataclass
class VideoFromComponents:
    images: object
    frame_rate: float


class CreateVideo(io.ComfyNode):
    """ComfyUI 0.8's V3 "Create Video" (comfy_extras/nodes_video.py): images + fps -> VIDEO."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CreateVideo", display_name="Create Video", category="image/video",
            inputs=[io.Image.Input("images"), io.Float.Input("fps", default=30.0, min=1.0, max=120.0, step=1.0),
                    io.Audio.Input("audio", optional=True)],
            outputs=[io.Video.Output()])

    @classmethod
    def execute(cls, images, fps, audio=None):
        return io.NodeOutput(VideoFromComponents(images, float(fps)))


class SaveVideo(io.ComfyNode):
    """ComfyUI 0.8's V3 "Save Video": writes the VIDEO to the output folder, history {"images": [...], "animated"}."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveVideo", display_name="Save Video", category="image/video",
            inputs=[io.Video.Input("video"), io.String.Input("filename_prefix", default="video/ComfyUI"),
                    io.Combo.Input("format", options=["auto", "mp4"], default="auto"),
                    io.Combo.Input("codec", options=["auto", "h264"], default="auto")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True)

    @classmethod
    def execute(cls, video, filename_prefix, format, codec):
        import folder_paths

        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, folder_paths.get_output_directory())
        file = f"{name}_{counter:05}_.mp4"
        _write_mp4(os.path.join(folder, file), video.images, video.frame_rate)
        return io.NodeOutput(ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


class VHS_VideoCombine:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "frame_rate": ("FLOAT,INT", {"default": 8, "min": 1, "step": 1}),
                "loop_count": ("INT", {"default": 0, "min": 0, "max": 100, "step": 1}),
                "filename_prefix": ("STRING", {"default": "AnimateDiff"}),
                "format": (["image/gif", "image/webp", "video/h264-mp4"], {}),
                "pingpong": ("BOOLEAN", {"default": False}),
                "save_output": ("BOOLEAN", {"default": True}),
            },
            "optional": {"audio": ("AUDIO",), "meta_batch": ("VHS_BatchManager",), "vae": ("VAE",)},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ("VHS_FILENAMES",)
    OUTPUT_NODE = True
    CATEGORY = "Video Helper Suite"
    FUNCTION = "combine_video"

    def combine_video(self, frame_rate, loop_count, images=None, filename_prefix="AnimateDiff", format="image/gif",
                      pingpong=False, save_output=True, prompt=None, extra_pnginfo=None, unique_id=None, **kwargs):
        import folder_paths

        assert format == "video/h264-mp4", "the stand-in only writes h264 mp4"
        out_dir = folder_paths.get_output_directory() if save_output else folder_paths.get_temp_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir)
        file = f"{name}_{counter:05}.mp4"
        path = os.path.join(folder, file)
        _write_mp4(path, images, frame_rate)
        preview = {"filename": file, "subfolder": subfolder, "type": "output" if save_output else "temp",
                   "format": format, "frame_rate": frame_rate, "fullpath": path}
        return {"ui": {"gifs": [preview]}, "result": ((save_output, [path]),)}


class StringMultiline(io.ComfyNode):
    """ComfyUI 0.8's V3 "String (Multiline)" (comfy_extras/nodes_primitive.py): one text that feeds several inputs."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="PrimitiveStringMultiline", display_name="String (Multiline)", category="utils/primitive",
                         inputs=[io.String.Input("value", multiline=True)], outputs=[io.String.Output()])

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(value)


MAPPINGS = {"LoadImage": LoadImage, "VHS_VideoCombine": VHS_VideoCombine,
            **{cls.GET_SCHEMA().node_id: cls for cls in (CreateVideo, SaveVideo, StringMultiline)}}
