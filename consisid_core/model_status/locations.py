"""Which folders to check: ComfyUI's models/ found from the pack's place, extra_model_paths.yaml, a given path."""

from __future__ import annotations

import os

from .. import catalog, model_folder
from ..errors import ConsisIDError
from .folders import ModelsReport, check_model_folder, scan_models


def logical_path(path: str) -> str:
    """`path` made absolute through the shell's $PWD, so a symlinked working folder stays as the user sees it.

    os.getcwd() (and so abspath and a script's __file__) resolves symlinks; $PWD keeps the path the user cd'ed into.
    """
    path, cwd, pwd = os.path.abspath(path), os.getcwd(), os.environ.get("PWD", "")
    if not os.path.isabs(pwd) or pwd == cwd or not (path == cwd or path.startswith(cwd.rstrip(os.sep) + os.sep)):
        return path
    try:
        same = os.path.samefile(pwd, cwd)
    except OSError:
        same = False
    return os.path.normpath(pwd + path[len(cwd):]) if same else path


PACK_DIR = logical_path(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def locate_models_dir(pack_dir: str | None = None) -> tuple[str, str]:
    """(ComfyUI's models folder, how it was found): from custom_nodes/<pack>, else $COMFYUI_DIR, else ./models."""
    pack_dir = logical_path(pack_dir) if pack_dir else PACK_DIR
    custom_nodes = os.path.dirname(pack_dir)
    if os.path.basename(custom_nodes) == "custom_nodes":
        return os.path.join(os.path.dirname(custom_nodes), "models"), f"the pack is in {custom_nodes}"
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if comfy_dir:
        return os.path.join(comfy_dir, "models"), "from $COMFYUI_DIR"
    return logical_path("models"), f"the pack ({pack_dir}) is not inside ComfyUI/custom_nodes and $COMFYUI_DIR is unset"


def default_models_dir() -> str:
    """ComfyUI's models folder when the pack sits in ComfyUI/custom_nodes/, else $COMFYUI_DIR/models, else ./models."""
    return locate_models_dir()[0]


def _load_extra_paths_yaml(path: str) -> dict:
    """The YAML mapping of an extra_model_paths.yaml; ConsisIDError (one line) when it is missing or malformed."""
    import yaml  # pyyaml ships with transformers/huggingface_hub; only needed for this optional file

    where = f"extra model paths file {path}"
    if not os.path.isfile(path):
        raise ConsisIDError(f"{where}: {'is a folder' if os.path.isdir(path) else 'no such file'}; give ComfyUI's "
                            "extra_model_paths.yaml (or leave the option out)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except UnicodeDecodeError as exc:
        raise ConsisIDError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConsisIDError(f"{where}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" on line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConsisIDError(f"{where}: not valid YAML{line} ({problem}); fix it like ComfyUI's "
                            "extra_model_paths.yaml.example") from None
    if data is not None and (not isinstance(data, dict) or not all(isinstance(v, (dict, type(None))) for v in data.values())):
        raise ConsisIDError(f"{where}: expected sections of `key: folder` lines (e.g. `comfyui:` with `base_path:` "
                            "and `consisid: models/consisid/`), like ComfyUI's extra_model_paths.yaml.example")
    return data or {}


def read_extra_model_paths(yaml_path: str) -> dict[str, list[str]]:
    """Folder lists per key from a ComfyUI extra_model_paths.yaml (same resolution rules as ComfyUI)."""
    config = _load_extra_paths_yaml(yaml_path)
    yaml_dir = os.path.dirname(os.path.abspath(yaml_path))
    result: dict[str, list[str]] = {}
    for section in config.values():
        if not isinstance(section, dict):
            continue
        section = dict(section)
        base = section.pop("base_path", None)
        section.pop("is_default", None)
        if base:
            base = os.path.expandvars(os.path.expanduser(str(base)))
            if not os.path.isabs(base):
                base = os.path.abspath(os.path.join(yaml_dir, base))
        for key, value in section.items():
            for line in str(value).split("\n"):
                line = line.strip()
                if not line:
                    continue
                path = os.path.join(base, line) if base else line
                if not os.path.isabs(path):
                    path = os.path.join(yaml_dir, path)
                result.setdefault(key, []).append(os.path.normpath(path))
    return result


def _roots(models_dir: str, key: str, extra: dict[str, list[str]]) -> list[str]:
    return [str(p) for p in model_folder.roots_under(models_dir, key, extra)]


def scan_models_root(models_dir: str, extra_paths: dict[str, list[str]] | None = None) -> ModelsReport:
    """Check a ComfyUI `models/` folder plus optional extra paths (as read_extra_model_paths returns)."""
    extra = extra_paths or {}
    return scan_models(_roots(models_dir, catalog.CONSISID_FOLDER_KEY, extra),
                       _roots(models_dir, catalog.INSIGHTFACE_FOLDER_KEY, extra))


def report_for_path(path: str | None = None, extra_paths_yaml: str | None = None) -> ModelsReport:
    """Check a ComfyUI models folder, a `models/consisid` folder or a single model folder, whichever `path` is."""
    path = logical_path(path) if path else default_models_dir()
    if extra_paths_yaml is None:
        guess = os.path.join(os.path.dirname(path), "extra_model_paths.yaml")
        extra_paths_yaml = guess if os.path.basename(path) == "models" and os.path.isfile(guess) else None
    extra = read_extra_model_paths(extra_paths_yaml) if extra_paths_yaml else {}
    if model_folder.is_given_model_folder(path):
        insight = [d for d in _roots(os.path.dirname(os.path.dirname(path)), catalog.INSIGHTFACE_FOLDER_KEY, extra)
                   if os.path.isdir(d)]
        return ModelsReport([os.path.dirname(path)], insight, [check_model_folder(path, insight)])
    if os.path.basename(path) == catalog.CONSISID_FOLDER_KEY and not os.path.isdir(os.path.join(path, catalog.CONSISID_FOLDER_KEY)):
        models_root = os.path.dirname(path)
        consisid = [path] + extra.get(catalog.CONSISID_FOLDER_KEY, [])
        return scan_models(consisid, _roots(models_root, catalog.INSIGHTFACE_FOLDER_KEY, extra))
    return scan_models_root(path, extra)
