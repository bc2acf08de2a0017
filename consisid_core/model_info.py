"""What a checkpoint supports (native sizes, size rules), read once from its configs; at the package base so the
engine, model_folder, training and the nodes all import it downward."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """Native sizes and switches of a ConsisID checkpoint (from transformer and VAE configs)."""

    native_height: int
    native_width: int
    native_frames: int
    text_len: int
    text_embed_dim: int
    is_kps: bool
    learned_positions: bool
    rotary_positions: bool
    patch_size: int
    attention_head_dim: int
    latent_channels: int
    vae_spatial: int
    vae_temporal: int
    vae_scaling: float
    face_scale: float

    @classmethod
    def from_configs(cls, transformer_config: dict, vae_config: dict) -> "ModelInfo":
        """Derive the info the way ConsisIDPipeline derives it from the same configs."""
        spatial = 2 ** (len(vae_config.get("block_out_channels", (128, 256, 256, 512))) - 1)
        return cls(
            native_height=int(transformer_config.get("sample_height", 60)) * spatial,
            native_width=int(transformer_config.get("sample_width", 90)) * spatial,
            native_frames=int(transformer_config.get("sample_frames", 49)),
            text_len=int(transformer_config.get("max_text_seq_length", 226)),
            text_embed_dim=int(transformer_config.get("text_embed_dim", 4096)),
            is_kps=bool(transformer_config.get("is_kps", False)),
            learned_positions=bool(transformer_config.get("use_learned_positional_embeddings", False)),
            rotary_positions=bool(transformer_config.get("use_rotary_positional_embeddings", False)),
            patch_size=int(transformer_config.get("patch_size", 2)),
            attention_head_dim=int(transformer_config.get("attention_head_dim", 64)),
            latent_channels=int(transformer_config.get("in_channels", 32)) // 2,
            vae_spatial=spatial,
            vae_temporal=int(vae_config.get("temporal_compression_ratio", 4)),
            vae_scaling=float(vae_config.get("scaling_factor", 0.7)),
            face_scale=float(transformer_config.get("local_face_scale", 1.0)),
        )

    @property
    def size_multiple(self) -> int:
        """Pixel sizes must be multiples of this (VAE downsampling x transformer patch)."""
        return self.vae_spatial * self.patch_size

    @property
    def frame_step(self) -> int:
        """Frame counts decode to exactly that many frames when they are frame_step * k + 1."""
        return 2 * self.vae_temporal

    @property
    def min_frames(self) -> int:
        """The shortest frame count worth generating (one step above a single frame)."""
        return self.frame_step + 1

    def latent_frames(self, num_frames: int) -> int:
        """Latent frame count the reference uses for `num_frames` video frames."""
        return (num_frames - 1) // self.vae_temporal + 1
