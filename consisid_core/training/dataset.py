"""The prepared dataset as a stream of samples: a seeded order per epoch, addressed by a global position."""

from __future__ import annotations

from pathlib import Path

import torch

from .manifest import EMPTY_PROMPT, DatasetError, read_settings, usable


class ClipDataset(torch.utils.data.Dataset):
    """`dataset[position]` -> one cached clip; positions run forever (epoch = position // clips).

    The order of each epoch is a permutation seeded by (seed, epoch), so a position always names the same
    clip whatever the process count: resuming at a position continues the same data stream.
    """

    def __init__(self, folder: str | Path, seed: int = 0, length: int | None = None) -> None:
        from safetensors.torch import load_file

        self.folder = Path(folder)
        self.settings = read_settings(self.folder)
        self.entries = sorted(usable(self.folder), key=lambda e: e["id"])
        if not self.entries:
            raise DatasetError(f"{self.folder} has no usable clip (see its report.txt); prepare clips with a visible face")
        self.seed = int(seed)
        self.length = length if length is not None else len(self.entries)
        self.empty_prompt = load_file(str(self.folder / EMPTY_PROMPT))["prompt_embeds"]
        self._cache: dict[int, dict] = {}
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return self.length

    def order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            self._orders[epoch] = torch.randperm(len(self.entries), generator=gen).tolist()
        return self._orders[epoch]

    def clip_index(self, position: int) -> int:
        epoch, offset = divmod(int(position), len(self.entries))
        return self.order(epoch)[offset]

    def load(self, index: int) -> dict:
        """Tensors and manifest entry of clip `index` (kept in memory once read: the cache files are small)."""
        if index not in self._cache:
            from safetensors.torch import load_file

            entry = self.entries[index]
            self._cache[index] = {"entry": entry, "tensors": load_file(str(self.folder / entry["file"]))}
        return self._cache[index]

    def __getitem__(self, position: int) -> dict:
        item = self.load(self.clip_index(position))
        return {"position": int(position), "entry": item["entry"], "tensors": item["tensors"]}


def collate(samples: list[dict]) -> list[dict]:
    """Samples stay a list: each is turned into model inputs with its own random draws."""
    return samples


def reference(sample: dict, cross_face: bool, generator: torch.Generator) -> tuple[dict, str]:
    """(reference entry, its key): one from outside the window when `cross_face` and there is one, else the inside one."""
    refs = sample["entry"]["refs"]
    outside = [r for r in refs if not r["inside"]]
    if cross_face and outside:
        return outside[int(torch.randint(0, len(outside), (1,), generator=generator))], "outside"
    inside = [r for r in refs if r["inside"]]
    return inside[0], "inside"


def identity_tensors(sample: dict, ref: dict) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """(id_cond, id_vit_hidden, face image uint8 [512,512,3], face keypoints [5,2]) of one reference."""
    tensors, key = sample["tensors"], ref["key"]
    hidden = []
    while f"{key}.vit{len(hidden)}" in tensors:
        hidden.append(tensors[f"{key}.vit{len(hidden)}"])
    return tensors[f"{key}.id_cond"], hidden, tensors[f"{key}.face"], tensors[f"{key}.face_kps"]
