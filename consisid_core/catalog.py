"""Where every weight file of the pack lives and where it comes from (one source of truth)."""

from __future__ import annotations

from dataclasses import dataclass

HF_REPO = "BestWishYsh/ConsisID-preview"
HF_URL = f"https://huggingface.co/{HF_REPO}"
INSIGHTFACE_ANTELOPEV2_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip"

FACE_ENCODER_DIR = "face_encoder"
ANTELOPEV2_SUBDIR = ("models", "antelopev2")

RETINAFACE_FILE = "detection_Resnet50_Final.pth"
BISENET_FILE = "parsing_bisenet.pth"
EVA_CLIP_FILE = "EVA02_CLIP_L_336_psz14_s6B.pt"
ANTELOPEV2_FILES = ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "1k3d68.onnx", "2d106det.onnx", "genderage.onnx")

# Inside ComfyUI: models/<CONSISID_FOLDER_KEY>/<model name>/ holds one model folder in the layout below;
# antelopev2 may instead live in models/<INSIGHTFACE_FOLDER_KEY>/models/antelopev2/.
CONSISID_FOLDER_KEY = "consisid"
INSIGHTFACE_FOLDER_KEY = "insightface"
DEFAULT_MODEL_NAME = "ConsisID-preview"


@dataclass(frozen=True)
class Source:
    """Where a file can be downloaded from: a Hugging Face repo path or a plain URL."""

    repo: str
    path: str

    @property
    def url(self) -> str:
        if self.repo.startswith("http"):
            return self.repo
        return f"https://huggingface.co/{self.repo}/blob/main/{self.path}"

    @property
    def download_url(self) -> str:
        """A direct-download link (the `resolve` form of a Hugging Face file)."""
        if self.repo.startswith("http"):
            return self.repo
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.path}"


def hf_source(path: str) -> Source:
    """The ConsisID-preview repo location of a file given by its path inside the model folder."""
    return Source(HF_REPO, path)


# How much to trust an expected size:
SIZE_EXACT = "exact"  # byte count known exactly (LFS pointer or a published checksum list)
SIZE_APPROX = "approx"  # known to about 3 significant digits (Hugging Face's "4.99 GB" display)
SIZE_UNKNOWN = "unknown"  # small config files whose size varies between uploads: only checked for content


@dataclass(frozen=True)
class CatalogFile:
    """One file of a model folder: its path inside the folder, expected size and download source."""

    path: str  # posix path relative to the model folder, e.g. "transformer/config.json"
    component: str  # transformer / vae / text_encoder / tokenizer / scheduler / pipeline / face_encoder / antelopev2
    size: int | None = None
    size_kind: str = SIZE_UNKNOWN
    alt_sizes: tuple[int, ...] = ()  # other exact sizes that are equally valid (e.g. an fp32 and a bf16 upload)
    required: bool = True
    any_of: str | None = None  # files sharing this tag are alternatives: one of them is enough
    weight_set: str | None = None  # part of the sharded weights of this component (see WEIGHT_SETS)
    note: str = ""

    @property
    def source(self) -> Source:
        return hf_source(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class WeightSet:
    """The weights of one component: one single file, or an index json naming its shards."""

    folder: str
    single: str
    index: str


WEIGHT_SETS = {
    "transformer": WeightSet("transformer", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json"),
    "vae": WeightSet("vae", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json"),
    "text_encoder": WeightSet("text_encoder", "model.safetensors", "model.safetensors.index.json"),
}

_GB = 1_000_000_000
_MB = 1_000_000

# Sizes and where they were confirmed:
# - face_encoder/*: the ConsisID-preview `face_encoder` tree page shows EVA 856 MB, RetinaFace 109 MB;
#   exact byte counts come from public checksum lists of the same files (EVA02_CLIP_L_336_psz14_s6B.pt
#   856461210, detection_Resnet50_Final.pth 109497761 = its LFS pointer, parsing_bisenet.pth 53289463).
# - antelopev2/*: the standard insightface pack (consisid-inference.md section 4 and public checksum lists:
#   scrfd 16923827, glintr100 260665334, 1k3d68 143607619, 2d106det 5030888, genderage 1322532).
# - text_encoder shards: the ConsisID-preview blob pages show 4.99 GB and 4.53 GB (same as CogVideoX-5B-I2V).
# - transformer: the blob page of shard 2 shows 2.44 GB. Shard 1 could not be retrieved: about 10 GB is
#   inferred from diffusers' 10 GB shard limit and a ~12.4 GB bf16 transformer; treat it as approximate.
#   The safetensors header check in model_status detects truncated shards exactly whatever this says.
# - vae: CogVideoX's VAE exists as bf16 (431220702 bytes) and fp32 (862388596 bytes) uploads; which one
#   ConsisID-preview carries was not confirmed, so both are accepted.
# - tokenizer/spiece.model: the T5 v1.1 SentencePiece model, 791656 bytes wherever it is published.
# - JSON configs: sizes not pinned (they change with diffusers versions); they must parse as JSON instead.
MODEL_FILES: tuple[CatalogFile, ...] = (
    CatalogFile("model_index.json", "pipeline", note="ConsisIDPipeline component list"),
    CatalogFile("scheduler/scheduler_config.json", "scheduler"),
    CatalogFile("transformer/config.json", "transformer"),
    CatalogFile("transformer/diffusion_pytorch_model.safetensors.index.json", "transformer", weight_set="transformer"),
    CatalogFile(
        "transformer/diffusion_pytorch_model-00001-of-00002.safetensors", "transformer", 10 * _GB, SIZE_APPROX,
        weight_set="transformer", note="size not confirmed (about 10 GB)",
    ),
    CatalogFile(
        "transformer/diffusion_pytorch_model-00002-of-00002.safetensors", "transformer", 2_440 * _MB, SIZE_APPROX,
        weight_set="transformer",
    ),
    CatalogFile("vae/config.json", "vae"),
    CatalogFile(
        "vae/diffusion_pytorch_model.safetensors", "vae", 862_388_596, SIZE_EXACT, alt_sizes=(431_220_702,),
        weight_set="vae", note="fp32 (862 MB) or bf16 (431 MB) upload",
    ),
    CatalogFile("text_encoder/config.json", "text_encoder"),
    CatalogFile("text_encoder/model.safetensors.index.json", "text_encoder", weight_set="text_encoder"),
    CatalogFile("text_encoder/model-00001-of-00002.safetensors", "text_encoder", 4_990 * _MB, SIZE_APPROX, weight_set="text_encoder"),
    CatalogFile("text_encoder/model-00002-of-00002.safetensors", "text_encoder", 4_530 * _MB, SIZE_APPROX, weight_set="text_encoder"),
    CatalogFile("tokenizer/spiece.model", "tokenizer", 791_656, SIZE_EXACT, any_of="tokenizer-vocab"),
    CatalogFile("tokenizer/tokenizer.json", "tokenizer", any_of="tokenizer-vocab", note="alternative to spiece.model"),
    CatalogFile("tokenizer/tokenizer_config.json", "tokenizer", required=False),
    CatalogFile("tokenizer/special_tokens_map.json", "tokenizer", required=False),
    CatalogFile("tokenizer/added_tokens.json", "tokenizer", required=False),
    CatalogFile(f"{FACE_ENCODER_DIR}/{EVA_CLIP_FILE}", "face_encoder", 856_461_210, SIZE_EXACT, note="EVA02-CLIP-L-14-336"),
    CatalogFile(f"{FACE_ENCODER_DIR}/{RETINAFACE_FILE}", "face_encoder", 109_497_761, SIZE_EXACT, note="RetinaFace R50 detector"),
    CatalogFile(f"{FACE_ENCODER_DIR}/{BISENET_FILE}", "face_encoder", 53_289_463, SIZE_EXACT, note="BiSeNet face parser"),
)

ANTELOPEV2_SIZES = {
    "scrfd_10g_bnkps.onnx": 16_923_827,
    "glintr100.onnx": 260_665_334,
    "1k3d68.onnx": 143_607_619,
    "2d106det.onnx": 5_030_888,
    "genderage.onnx": 1_322_532,
}

ANTELOPEV2_DIR = "/".join((FACE_ENCODER_DIR,) + ANTELOPEV2_SUBDIR)

# Our face pipeline runs only the SCRFD detector and the glintr100 ArcFace of the pack (the reference's
# FaceAnalysis also loads the landmark and gender/age models, then ignores them).
ANTELOPEV2_USED = ("scrfd_10g_bnkps.onnx", "glintr100.onnx")

ANTELOPEV2_CATALOG: tuple[CatalogFile, ...] = tuple(
    CatalogFile(
        f"{ANTELOPEV2_DIR}/{name}", "antelopev2", ANTELOPEV2_SIZES[name], SIZE_EXACT,
        required=name in ANTELOPEV2_USED, note="" if name in ANTELOPEV2_USED else "part of the pack; not used by ConsisID",
    )
    for name in ANTELOPEV2_FILES
)

ALL_FILES: tuple[CatalogFile, ...] = MODEL_FILES + ANTELOPEV2_CATALOG


def files_by_component() -> dict[str, list[CatalogFile]]:
    """The catalog grouped by component, in catalog order."""
    groups: dict[str, list[CatalogFile]] = {}
    for entry in ALL_FILES:
        groups.setdefault(entry.component, []).append(entry)
    return groups
