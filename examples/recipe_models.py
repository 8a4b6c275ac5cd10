"""Small models shaped like the ones the recipes in ``examples/recipes/`` are written for, in plain torch.

Each keeps the parameter names and module classes of the real model (timm's
ViT and ConvNeXt, Hugging Face's Llama and BERT, torchvision's Faster R-CNN,
fastai's AWD-LSTM classifier), so a recipe written for the real model compiles
against them; only the sizes are small. Use them with
``--model examples/recipe_models.py:convnext`` and friends. The ViT, Llama,
BERT and AWD-LSTM models also run forward; the ConvNeXt and Faster R-CNN ones
only hold their parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


# --- timm's ViT, as MAE and BEiT fine-tune it (global average pooling: fc_norm, no final norm) -----------

class Attention(nn.Module):
    """Self-attention with one ``qkv`` projection and an output ``proj``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """The transformer MLP (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm ViT block: ``norm1``, ``attn``, ``norm2``, ``mlp``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Image to patch tokens (``proj``)."""

    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """timm's ViT with ``global_pool="avg"``: tokens, ``blocks.N``, ``fc_norm`` and ``head``."""

    def __init__(self, depth: int = 12, dim: int = 32, heads: int = 4, image: int = 32, patch: int = 8,
                 classes: int = 10):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.patch_embed = PatchEmbed(patch, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.fc_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.fc_norm(self.blocks(x)[:, 1:].mean(dim=1)))


def mae_vit(depth: int = 12) -> VisionTransformer:
    """A small ViT as MAE and BEiT fine-tune it (ViT-B/16 has 12 blocks)."""
    return VisionTransformer(depth=depth)


# --- timm's ConvNeXt ------------------------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    """timm's LayerNorm over the channels of an image tensor."""


class ConvNeXtBlock(nn.Module):
    """Depthwise convolution, LayerNorm, an MLP and a layer scale ``gamma``."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)


class ConvNeXtStage(nn.Module):
    """A ``downsample`` (none in the first stage) and ``blocks``."""

    def __init__(self, before: int, dim: int, depth: int):
        super().__init__()
        self.downsample = (nn.Sequential(LayerNorm2d(before), nn.Conv2d(before, dim, 2, 2)) if before != dim
                           else nn.Identity())
        self.blocks = nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))


class NormMlpClassifierHead(nn.Module):
    """timm's ConvNeXt head: a ``norm`` and the classifier ``fc``."""

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.fc = nn.Linear(dim, classes)


class ConvNeXt(nn.Module):
    """``stem``, ``stages.N`` and ``head``, as timm names them."""

    def __init__(self, depths=(3, 3, 9, 3), dims=(8, 16, 32, 64), classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0]))
        self.stages = nn.Sequential(*(ConvNeXtStage(dims[max(i - 1, 0)], dims[i], d) for i, d in enumerate(depths)))
        self.norm_pre = nn.Identity()
        self.head = NormMlpClassifierHead(dims[-1], classes)


def convnext() -> ConvNeXt:
    """A small ConvNeXt with the depths of ConvNeXt-T (3, 3, 9, 3)."""
    return ConvNeXt()


# --- Hugging Face's Llama ---------------------------------------------------------------------------------

class LlamaRMSNorm(nn.Module):
    """RMS normalisation with a learned scale."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class LlamaAttention(nn.Module):
    """Causal self-attention with separate projections and no biases."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        return self.o_proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, n, d))


class LlamaMLP(nn.Module):
    """The SwiGLU feed-forward block."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    """``input_layernorm``, ``self_attn``, ``post_attention_layernorm``, ``mlp``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self_attn, self.mlp = LlamaAttention(dim, heads), LlamaMLP(dim, 3 * dim)
        self.input_layernorm, self.post_attention_layernorm = LlamaRMSNorm(dim), LlamaRMSNorm(dim)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """``embed_tokens``, ``layers.N`` and the final ``norm``."""

    def __init__(self, layers: int, dim: int, heads: int, vocab: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(LlamaDecoderLayer(dim, heads) for _ in range(layers))
        self.norm = LlamaRMSNorm(dim)


class LlamaForCausalLM(nn.Module):
    """``model`` and an untied ``lm_head``."""

    def __init__(self, layers: int = 4, dim: int = 32, heads: int = 4, vocab: int = 64):
        super().__init__()
        self.model = LlamaModel(layers, dim, heads, vocab)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        x = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            x = layer(x)
        return self.lm_head(self.model.norm(x))


def llama(layers: int = 4) -> LlamaForCausalLM:
    """A small Llama-style decoder with ``layers`` layers."""
    return LlamaForCausalLM(layers=layers)


# --- Hugging Face's BERT for sequence classification ------------------------------------------------------

class BertEmbeddings(nn.Module):
    """Word, position and token type embeddings, then ``LayerNorm``."""

    def __init__(self, vocab: int, dim: int, positions: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(positions, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.LayerNorm = nn.LayerNorm(dim)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.word_embeddings(tokens) + self.position_embeddings(positions)
        return self.LayerNorm(x + self.token_type_embeddings(torch.zeros_like(tokens)))


class BertSelfAttention(nn.Module):
    """``query``, ``key`` and ``value`` projections."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, -1).transpose(1, 2) for p in (self.query, self.key, self.value))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)


class BertOutput(nn.Module):
    """A ``dense`` projection, a residual connection and ``LayerNorm`` (BertSelfOutput and BertOutput)."""

    def __init__(self, inner: int, dim: int):
        super().__init__()
        self.dense = nn.Linear(inner, dim)
        self.LayerNorm = nn.LayerNorm(dim)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    """``self`` attention and its ``output``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self = BertSelfAttention(dim, heads)
        self.output = BertOutput(dim, dim)

    def forward(self, x):
        return self.output(self.self(x), x)


class BertIntermediate(nn.Module):
    """The first feed-forward projection (``dense``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, 4 * dim)

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertLayer(nn.Module):
    """``attention``, ``intermediate`` and ``output``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attention = BertAttention(dim, heads)
        self.intermediate = BertIntermediate(dim)
        self.output = BertOutput(4 * dim, dim)

    def forward(self, x):
        x = self.attention(x)
        return self.output(self.intermediate(x), x)


class BertModel(nn.Module):
    """``embeddings``, ``encoder.layer.N`` and the ``pooler``."""

    def __init__(self, layers: int, dim: int, heads: int, vocab: int):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, dim, 64)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(BertLayer(dim, heads) for _ in range(layers))
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(dim, dim)

    def forward(self, tokens):
        x = self.embeddings(tokens)
        for layer in self.encoder.layer:
            x = layer(x)
        return torch.tanh(self.pooler.dense(x[:, 0]))


class BertForSequenceClassification(nn.Module):
    """``bert`` and a ``classifier`` on the pooled first token."""

    def __init__(self, layers: int = 12, dim: int = 32, heads: int = 4, vocab: int = 100, classes: int = 2):
        super().__init__()
        self.bert = BertModel(layers, dim, heads, vocab)
        self.classifier = nn.Linear(dim, classes)

    def forward(self, tokens):
        return self.classifier(self.bert(tokens))


def bert(layers: int = 12) -> BertForSequenceClassification:
    """A small BERT classifier with ``layers`` layers (BERT-base has 12)."""
    return BertForSequenceClassification(layers=layers)


# --- torchvision's Faster R-CNN with a ResNet-50-FPN backbone ------------------------------------------------

class Bottleneck(nn.Module):
    """``conv1``-``conv3`` with ``bn1``-``bn3``, and a ``downsample`` in a stage's first block."""

    def __init__(self, before: int, width: int, first: bool):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(before, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, 4 * width, 1, bias=False), nn.BatchNorm2d(4 * width)
        if first:
            self.downsample = nn.Sequential(nn.Conv2d(before, 4 * width, 1, bias=False), nn.BatchNorm2d(4 * width))


class ResNetBody(nn.Module):
    """The ResNet trunk: ``conv1``, ``bn1``, then ``layer1``-``layer4``."""

    def __init__(self, blocks=(3, 4, 6, 3), width: int = 4):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width)
        before = width
        for i, count in enumerate(blocks):
            inner = width * 2 ** i
            self.add_module(f"layer{i + 1}", nn.Sequential(*(Bottleneck(before if k == 0 else 4 * inner, inner, k == 0)
                                                             for k in range(count))))
            before = 4 * inner


class FeaturePyramidNetwork(nn.Module):
    """``inner_blocks`` and ``layer_blocks``: a 1x1 and a 3x3 convolution per level."""

    def __init__(self, widths, out: int):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(w, out, 1)) for w in widths)
        self.layer_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(out, out, 3, padding=1)) for _ in widths)


class FasterRCNN(nn.Module):
    """``backbone.body``, ``backbone.fpn``, ``rpn.head`` and ``roi_heads``, as torchvision names them."""

    def __init__(self, width: int = 4, out: int = 8, classes: int = 91):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.body = ResNetBody(width=width)
        self.backbone.fpn = FeaturePyramidNetwork([4 * width * 2 ** i for i in range(4)], out)
        self.rpn = nn.Module()
        self.rpn.head = nn.Module()
        self.rpn.head.conv = nn.Sequential(nn.Sequential(nn.Conv2d(out, out, 3, padding=1), nn.ReLU()))
        self.rpn.head.cls_logits, self.rpn.head.bbox_pred = nn.Conv2d(out, 3, 1), nn.Conv2d(out, 12, 1)
        self.roi_heads = nn.Module()
        self.roi_heads.box_head = nn.Module()
        self.roi_heads.box_head.fc6, self.roi_heads.box_head.fc7 = nn.Linear(out * 49, 16), nn.Linear(16, 16)
        self.roi_heads.box_predictor = nn.Module()
        self.roi_heads.box_predictor.cls_score = nn.Linear(16, classes)
        self.roi_heads.box_predictor.bbox_pred = nn.Linear(16, 4 * classes)


def faster_rcnn() -> FasterRCNN:
    """A small Faster R-CNN with ResNet-50's block counts (3, 4, 6, 3)."""
    return FasterRCNN()


# --- fastai's AWD-LSTM text classifier (ULMFiT) ---------------------------------------------------------------

class WeightDropout(nn.Module):
    """fastai's DropConnect on an LSTM's hidden-to-hidden weights, kept as ``weight_hh_l0_raw``."""

    def __init__(self, module: nn.LSTM, p: float = 0.2):
        super().__init__()
        self.p = p
        self.weight_hh_l0_raw = nn.Parameter(module.weight_hh_l0.detach().clone())
        del module._parameters["weight_hh_l0"]
        self.module = module

    def forward(self, x):
        weight = F.dropout(self.weight_hh_l0_raw, self.p, self.training)
        return torch.func.functional_call(self.module, {"weight_hh_l0": weight}, (x,))


class AWD_LSTM(nn.Module):
    """The encoder: an ``encoder`` embedding (also ``encoder_dp.emb``) and three ``rnns``."""

    def __init__(self, vocab: int, emb: int, hidden: int):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.encoder_dp = nn.Module()
        self.encoder_dp.emb = self.encoder
        sizes = [emb, hidden, hidden, emb]
        self.rnns = nn.ModuleList(WeightDropout(nn.LSTM(sizes[i], sizes[i + 1], batch_first=True)) for i in range(3))

    def forward(self, tokens):
        x = self.encoder(tokens)
        for rnn in self.rnns:
            x = rnn(x)[0]
        return x


class PoolingLinearClassifier(nn.Module):
    """Concat pooling, then ``layers``: BatchNorm1d, Dropout and Linear twice (fastai's LinBnDrop)."""

    def __init__(self, emb: int, hidden: int, classes: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.BatchNorm1d(3 * emb), nn.Dropout(0.2), nn.Linear(3 * emb, hidden), nn.ReLU()),
            nn.Sequential(nn.BatchNorm1d(hidden), nn.Dropout(0.1), nn.Linear(hidden, classes)))

    def forward(self, x):
        return self.layers(torch.cat([x[:, -1], x.max(dim=1).values, x.mean(dim=1)], dim=1))


def ulmfit(vocab: int = 100, emb: int = 8, hidden: int = 16, classes: int = 2) -> nn.Sequential:
    """fastai's text classifier: ``0`` the AWD-LSTM encoder, ``1`` the pooling classifier."""
    return nn.Sequential(AWD_LSTM(vocab, emb, hidden), PoolingLinearClassifier(emb, hidden, classes))
