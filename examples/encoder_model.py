"""A BERT-shaped encoder for examples/amp_ema.opt: ``embed``, ``encoder.layer.{0..11}`` and a ``head``.

Parameter names follow Hugging Face's BERT (``encoder.layer.11.attention...``,
``LayerNorm``), scaled down so that it builds and trains in a moment on a CPU.
"""

import torch
from torch import nn


class Layer(nn.Module):
    """Self-attention and a feed-forward block, each followed by a LayerNorm."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.attention_norm = nn.LayerNorm(width)
        self.intermediate = nn.Linear(width, 4 * width)
        self.output = nn.Linear(4 * width, width)
        self.LayerNorm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x, x, x, need_weights=False)[0])
        return self.LayerNorm(x + self.output(torch.nn.functional.gelu(self.intermediate(x))))


class Encoder(nn.Module):
    """Token embeddings, a stack of layers and a classification head on the first token."""

    def __init__(self, vocab: int = 100, width: int = 16, layers: int = 12, heads: int = 2, classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(Layer(width, heads) for _ in range(layers))
        self.head = nn.Linear(width, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.encoder.layer:
            x = layer(x)
        return self.head(x[:, 0])
