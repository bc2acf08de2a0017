"""LoRA on a loaded engine, through diffusers/peft: stackable, per-LoRA strength, removable exactly.

Files are diffusers-format `pytorch_lora_weights.safetensors` (what `ConsisIDPipeline.save_lora_weights`
writes and `load_lora_weights` reads), from our trainer or made for CogVideoX-5B-I2V (same block names).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from ..errors import ModelFilesError, UnsupportedInputError

PREFIX = "transformer."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B)(?:\.[^.]+)?\.weight$")


def read_lora(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state dict with `transformer.` keys, adapter metadata or None) of a LoRA file, read with safetensors."""
    from diffusers import ConsisIDPipeline

    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFilesError(f"LoRA file {path} does not exist (give a .safetensors file, e.g. a training run's "
                              "pytorch_lora_weights.safetensors)")
    if path.suffix != ".safetensors":
        raise UnsupportedInputError(f"{path.name}: only .safetensors LoRA files are read (never pickles)")
    try:
        try:
            state, metadata = ConsisIDPipeline.lora_state_dict(str(path), return_lora_metadata=True)
        except TypeError:  # diffusers < 0.35 keeps no adapter metadata (alpha is then taken as the rank)
            state, metadata = ConsisIDPipeline.lora_state_dict(str(path)), None
    except Exception as exc:  # noqa: BLE001 - safetensors and diffusers raise many types for foreign files
        raise ModelFilesError(f"LoRA file {path} could not be read ({type(exc).__name__}: {exc})") from exc
    if not state:
        raise UnsupportedInputError(f"{path.name} holds no LoRA weights")
    return state, metadata


def check_fits(transformer, state: dict[str, torch.Tensor], name: str) -> None:
    """Every LoRA tensor must name a linear layer of this transformer with matching sizes; else one clear error."""
    modules = dict(transformer.named_modules())
    problems = []
    for key, value in state.items():
        body = key[len(PREFIX):] if key.startswith(PREFIX) else None
        match = _LORA_KEY.match(body or "")
        if match is None:
            problems.append(f"{key} (not a transformer LoRA key)")
            continue
        module = modules.get(match["module"])
        base = getattr(module, "base_layer", module)
        if not isinstance(base, torch.nn.Linear):
            problems.append(f"{key} (no linear layer {match['module']} in the ConsisID transformer)")
            continue
        size = base.in_features if match["kind"] == "lora_A" else base.out_features
        got = value.shape[1] if match["kind"] == "lora_A" else value.shape[0]
        if value.ndim != 2 or got != size:
            problems.append(f"{key} (shape {tuple(value.shape)} does not fit the layer's {size} features)")
    if problems:
        raise UnsupportedInputError(
            f"LoRA '{name}' does not fit this ConsisID transformer: {len(problems)} of {len(state)} tensors, e.g. "
            + "; ".join(problems[:3]) + ". It was made for another model (ConsisID and CogVideoX-5B-I2V LoRAs fit)."
        )


def _apply(engine) -> None:
    names = list(engine.loras)
    if names:
        engine.transformer.set_adapters(names, [engine.loras[n][1] for n in names])


def load_lora(engine, path: str | Path, strength: float = 1.0, name: str | None = None) -> str:
    """Add a LoRA (replacing one of the same name); returns its name. Strength scales its update."""
    name = name or Path(path).stem
    state, metadata = read_lora(path)
    check_fits(engine.transformer, state, name)
    if name in engine.loras:
        unload_lora(engine, name)
    kwargs = {"metadata": metadata} if metadata else {}
    with warnings.catch_warnings():  # peft warns that a second adapter is being added: stacking is the point
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        engine.transformer.load_lora_adapter(state, prefix="transformer", adapter_name=name, **kwargs)
    engine.loras[name] = (str(path), float(strength))
    _apply(engine)
    return name


def unload_lora(engine, name: str | None = None) -> None:
    """Remove one LoRA by name, or all of them (the transformer's layers are then exactly the original ones)."""
    if name is not None and name not in engine.loras:
        raise UnsupportedInputError(f"no LoRA named {name!r} is loaded (loaded: {sorted(engine.loras) or 'none'})")
    names = list(engine.loras) if name is None else [name]
    if not names:
        return
    if len(names) == len(engine.loras):
        engine.transformer.unload_lora()
        engine.loras.clear()
        return
    engine.transformer.delete_adapters(names)
    for n in names:
        engine.loras.pop(n)
    _apply(engine)


def use_loras(engine, stack: tuple[tuple[str, float], ...]) -> None:
    """Make the engine carry exactly `stack` ((path, strength) pairs, in order): load, re-weight or remove as needed."""
    wanted = {f"lora{i}_{Path(p).stem}": (str(p), float(s)) for i, (p, s) in enumerate(stack)}
    if wanted == engine.loras:
        return
    for name in [n for n in engine.loras if n not in wanted or engine.loras[n][0] != wanted[n][0]]:
        unload_lora(engine, name)
    for name, (path, strength) in wanted.items():
        if name not in engine.loras:
            load_lora(engine, path, strength, name)
    engine.loras.update(wanted)
    _apply(engine)


def transformer_linears(config: dict) -> dict[str, tuple[int, int]]:
    """(in, out) features of every linear layer of a ConsisID transformer built from `config` on the meta
    device: exact layer sizes without reading or allocating any weight."""
    from diffusers import ConsisIDTransformer3DModel

    init = {k: v for k, v in config.items() if not k.startswith("_")}
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = ConsisIDTransformer3DModel.from_config(init)
    return {n: (m.in_features, m.out_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def lora_file_problem(path: str | Path, transformer_config: dict) -> str | None:
    """Before any model loads: None when the LoRA file is whole and every tensor fits the transformer that
    `transformer_config` describes (same rules as `check_fits`), else one line saying why. Reads the header only."""
    from ..file_formats import format_problem, read_safetensors_header, safetensors_shapes

    path = Path(path).expanduser()
    problem = format_problem(path)
    if problem is not None:
        return f"LoRA file {path}: {problem}"
    shapes = safetensors_shapes(read_safetensors_header(path)[0])
    if not shapes:
        return f"LoRA file {path} holds no tensors"
    linears = transformer_linears(transformer_config)
    misfits = []
    for key, shape in shapes.items():
        match = _LORA_KEY.match(key[len(PREFIX):] if key.startswith(PREFIX) else "")
        if match is None:
            misfits.append(f"{key} (not a transformer LoRA key)")
            continue
        layer = linears.get(match["module"])
        if layer is None:
            misfits.append(f"{key} (no linear layer {match['module']} in the ConsisID transformer)")
            continue
        size = layer[0] if match["kind"] == "lora_A" else layer[1]
        got = shape[1] if match["kind"] == "lora_A" and len(shape) == 2 else shape[0] if len(shape) == 2 else None
        if got != size:
            misfits.append(f"{key} (shape {tuple(shape)} does not fit the layer's {size} features)")
    if misfits:
        return (f"LoRA file {path} does not fit this ConsisID transformer: {len(misfits)} of {len(shapes)} tensors, "
                f"e.g. " + "; ".join(misfits[:3]) + ". It was made for another model (ConsisID and CogVideoX-5B-I2V "
                "LoRAs fit)")
    return None
