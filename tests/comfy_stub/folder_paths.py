"""Stand-in for ComfyUI 0.8 `folder_paths.py`: model folder registry and the input/output/temp folders."""

from __future__ import annotations

import os
import time

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}
base_path = ""
models_dir = ""
output_directory = ""
temp_directory = ""
input_directory = ""
user_directory = ""

_LEGACY = {"unet": "diffusion_models", "clip": "text_encoders"}


def set_base_path(path: str) -> None:
    """Stand-in only: root every folder at `path` (ComfyUI derives them from its install folder)."""
    global base_path, models_dir, output_directory, temp_directory, input_directory, user_directory
    base_path = os.path.abspath(path)
    models_dir = os.path.join(base_path, "models")
    output_directory = os.path.join(base_path, "output")
    temp_directory = os.path.join(base_path, "temp")
    input_directory = os.path.join(base_path, "input")
    user_directory = os.path.join(base_path, "user")
    folder_names_and_paths.clear()
    for key in ("checkpoints", "loras", "vae", "vae_approx", "embeddings"):
        folder_names_and_paths[key] = ([os.path.join(models_dir, key)], supported_pt_extensions)
    folder_names_and_paths["text_encoders"] = (
        [os.path.join(models_dir, "text_encoders"), os.path.join(models_dir, "clip")], supported_pt_extensions)
    folder_names_and_paths["diffusers"] = ([os.path.join(models_dir, "diffusers")], ["folder"])
    folder_names_and_paths["custom_nodes"] = ([os.path.join(base_path, "custom_nodes")], set())
    for folder in (models_dir, output_directory, temp_directory, input_directory):
        os.makedirs(folder, exist_ok=True)


def map_legacy(folder_name: str) -> str:
    return _LEGACY.get(folder_name, folder_name)


def get_output_directory() -> str:
    return output_directory


def get_temp_directory() -> str:
    return temp_directory


def get_input_directory() -> str:
    return input_directory


def get_user_directory() -> str:
    return user_directory


def get_directory_by_type(type_name: str) -> str | None:
    return {"output": output_directory, "temp": temp_directory, "input": input_directory}.get(type_name)


def annotated_filepath(name: str) -> tuple[str, str | None]:
    for tag, folder in (("[output]", output_directory), ("[input]", input_directory), ("[temp]", temp_directory)):
        if name.endswith(tag):
            return name[: -len(tag) - 1], folder
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return os.path.join(base_dir, name)


def exists_annotated_filepath(name) -> bool:
    name, base_dir = annotated_filepath(name)
    return os.path.exists(os.path.join(base_dir or get_input_directory(), name))


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Same rules as ComfyUI: a new key gets an empty extension set (accept every file)."""
    folder_name = map_legacy(folder_name)
    if folder_name in folder_names_and_paths:
        paths, _exts = folder_names_and_paths[folder_name]
        if full_folder_path in paths:
            if is_default and paths[0] != full_folder_path:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name: str) -> list[str]:
    return folder_names_and_paths[map_legacy(folder_name)][0][:]


def filter_files_extensions(files, extensions) -> list[str]:
    return sorted(f for f in files if os.path.splitext(f)[-1].lower() in extensions or len(extensions) == 0)


def get_filename_list(folder_name: str) -> list[str]:
    paths, extensions = folder_names_and_paths[map_legacy(folder_name)]
    found = set()
    for root in paths:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return filter_files_extensions(found, extensions)


def get_full_path(folder_name: str, filename: str) -> str | None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for root in folder_names_and_paths[folder_name][0]:
        full_path = os.path.join(root, filename)
        if os.path.isfile(full_path):
            return full_path
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0):
    """(folder, filename, counter, subfolder, prefix) like ComfyUI, without the %token% substitutions."""
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    os.makedirs(full_output_folder, exist_ok=True)
    existing = [f for f in os.listdir(full_output_folder) if f.startswith(filename + "_")]
    counter = len(existing) + 1
    return full_output_folder, filename, counter, subfolder, filename_prefix


_ = time  # ComfyUI's module uses time for its file-list cache; kept for parity of imports
