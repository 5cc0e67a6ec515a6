"""Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021).

Module names follow torchvision's ``VisionTransformer`` so that the NoT paper's layer names apply:
the first layer is the conv patch projection ``conv_proj`` (negated by NoT by default), then
``class_token``, ``encoder.pos_embedding``, ``encoder.layers.encoder_layer_<i>.{ln_1,
self_attention, ln_2, mlp}``, ``encoder.ln`` and the classifier ``heads.head``.

``ViT()`` defaults to a small model for CPU work (patch 4, width 64, depth 4); ``vit_b16`` in the
registry is ViT-B/16 (patch 16, width 768, depth 12, 12 heads, MLP 3072), trained from scratch as
the paper's accuracies suggest (docs/not.md, "ViT-B/16").
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from fednot.errors import ConfigError


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp_dim, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to tokens of shape (N, T, dim)."""
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        out: Tensor = x + self.mlp(self.ln_2(x))
        return out


class Encoder(nn.Module):
    """Position embedding, a stack of blocks, and a final LayerNorm."""

    def __init__(self, tokens: int, dim: int, depth: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, dim).normal_(std=0.02))
        self.layers = nn.Sequential(
            OrderedDict(
                (f"encoder_layer_{i}", EncoderBlock(dim, heads, mlp_dim)) for i in range(depth)
            )
        )
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """Encode tokens of shape (N, T, dim)."""
        out: Tensor = self.ln(self.layers(x + self.pos_embedding))
        return out


class ViT(nn.Module):
    """A Vision Transformer whose first layer is a conv patch projection."""

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_dim: int = 128,
    ) -> None:
        super().__init__()
        channels, height, width = input_shape
        if height % patch_size or width % patch_size:
            raise ConfigError(
                f"ViT patch_size={patch_size} must divide the image size {height}×{width}; "
                "choose another patch size or resize the images."
            )
        if dim % heads:
            raise ConfigError(f"ViT dim={dim} must be divisible by heads={heads}.")
        self.conv_proj = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        tokens = (height // patch_size) * (width // patch_size) + 1
        self.encoder = Encoder(tokens, dim, depth, heads, mlp_dim)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(dim, num_classes)))

    def forward(self, x: Tensor) -> Tensor:
        """Return logits of shape (N, num_classes)."""
        patches = self.conv_proj(x).flatten(2).transpose(1, 2)
        token = self.class_token.expand(x.shape[0], -1, -1)
        encoded = self.encoder(torch.cat([token, patches], dim=1))
        out: Tensor = self.heads(encoded[:, 0])
        return out


def vit_b16(*, input_shape: tuple[int, int, int], num_classes: int) -> ViT:
    """ViT-B/16: patch 16, width 768, depth 12, 12 heads, MLP 3072."""
    return ViT(
        input_shape=input_shape,
        num_classes=num_classes,
        patch_size=16,
        dim=768,
        depth=12,
        heads=12,
        mlp_dim=3072,
    )
