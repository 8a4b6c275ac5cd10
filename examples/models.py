"""Small models shaped like the ones the example specs are written for, in plain torch.

They keep the parameter names and module classes of the real architectures
(timm's ViT, a GPT-2-style decoder; a Llama-style one is in ``recipe_models.py``), so a spec written for the real model
compiles against them; only the sizes are small. Use them with
``--model examples/models.py:vit`` and friends.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Image to patch tokens, as timm's ``PatchEmbed`` names it (``proj``)."""

    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """The transformer MLP (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Self-attention with one ``qkv`` projection and an output ``proj``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, causal: bool = False):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """A pre-norm transformer block: ``norm1``, ``attn``, ``norm2``, ``mlp``."""

    def __init__(self, dim: int, heads: int, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, x):
        x = x + self.attn(self.norm1(x), self.causal)
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """A ViT with timm's names: ``cls_token``, ``pos_embed``, ``patch_embed``, ``blocks.N``, ``norm``, ``head``."""

    def __init__(self, depth: int = 12, dim: int = 32, heads: int = 4, image: int = 32, patch: int = 8,
                 classes: int = 10):
        super().__init__()
        tokens = (image // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.patch_embed = PatchEmbed(patch, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


class GPT(nn.Module):
    """A decoder with GPT-2's names: ``transformer.wte``, ``wpe``, ``h.N``, ``ln_f``; ``lm_head`` tied to ``wte``."""

    def __init__(self, layers: int = 4, dim: int = 32, heads: int = 4, vocab: int = 64, context: int = 16):
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, dim), "wpe": nn.Embedding(context, dim),
            "h": nn.ModuleList(Block(dim, heads, causal=True) for _ in range(layers)),
            "ln_f": nn.LayerNorm(dim)})
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx):
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in t.h:
            x = block(x)
        return self.lm_head(t.ln_f(x))


def vit(depth: int = 12) -> VisionTransformer:
    """A small ViT with ``depth`` blocks (ViT-B/16 has 12)."""
    return VisionTransformer(depth=depth)


def gpt(layers: int = 4) -> GPT:
    """A small GPT-style decoder with ``layers`` blocks."""
    return GPT(layers=layers)
