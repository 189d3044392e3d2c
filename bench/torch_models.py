"""Realistic torch models, written from scratch, exported to ONNX as real exporters do (bench only).

Each builder defines a common architecture in plain ``torch.nn`` (no download, random weights),
exports it with the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``: what
``optimum`` and most public ONNX files were made with; the dynamo exporter needs ``onnxscript``)
at opset 17 with ``dynamic_axes`` named like optimum's (``batch_size``, ``sequence_length``,
``height``, ``width``), and sets ``ir_version = 10`` so onnxruntime 1.32 loads it.

torch is a bench-only extra (``pip install torch``): nothing in ``advisor/`` or ``tests/`` imports
this module.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import torch
import torch.nn.functional as F
from torch import nn

OPSET = 17


def export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, *, inputs: list[str],
           outputs: list[str], axes: dict[str, dict[int, str]]) -> Path:
    """TorchScript-export ``model`` in eval mode and make the file loadable by onnxruntime 1.32."""
    model.eval()
    _trained_like(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(path))
    proto.ir_version = 10
    onnx.save(proto, str(path))
    return path


def _trained_like(model: nn.Module) -> None:
    """Give norm layers non-default statistics, as trained weights have: freshly initialised ones
    (weight 1, bias 0, mean 0, var 1) fold to identical constants that the exporter de-duplicates
    into one shared initializer, which no real model has."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.LayerNorm):
                for p in (m.weight, m.bias):
                    if p is not None:
                        p.add_(torch.randn(p.shape, generator=gen).to(p.dtype) * 0.1)
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.add_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.mul_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


_IMG = {0: "batch_size", 2: "height", 3: "width"}


# --------------------------------------------------------------------------------------------- CNNs
class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.down(x))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout: 7×7 stem, 4 stages of 2 basic blocks, global pool, fc."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        layers: list[nn.Module] = []
        cin = 64
        for i, c in enumerate((64, 128, 256, 512)):
            layers += [_Basic(cin, c, 1 if i == 0 else 2), _Basic(c, c, 1)]
            cin = c
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class _InvRes(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()]
        layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.res else self.body(x)


class MobileNetV2(nn.Module):
    """torchvision's mobilenet_v2 (width 1.0): inverted residuals, depthwise convs, ReLU6 (→ Clip)."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvRes(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class UNet(nn.Module):
    """A U-Net: conv blocks, MaxPool down, ConvTranspose up at two levels and bilinear Resize at the
    others, Concat skips, a 1×1 head (segmentation-style, full-resolution output)."""

    def __init__(self, base: int = 32, classes: int = 2) -> None:
        super().__init__()
        chans = [base * 2**i for i in range(5)]

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.downs = nn.ModuleList([block(3 if i == 0 else chans[i - 1], c) for i, c in enumerate(chans)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, 2) if i >= 2 else
                                  nn.Conv2d(chans[i + 1], chans[i], 1) for i in range(4)])
        self.dec = nn.ModuleList([block(2 * c, c) for c in chans[:4]])
        self.head = nn.Conv2d(chans[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, d in enumerate(self.downs):
            x = d(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(4)):
            if i >= 2:
                x = self.ups[i](x)
            else:
                x = self.ups[i](F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
            x = self.dec[i](torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


# ------------------------------------------------------------------------------------- transformers
class _Attn(nn.Module):
    """Hand-written multi-head attention (as HF BERT/GPT-2 write it): fused or separate projections."""

    def __init__(self, d: int, heads: int, *, fused_qkv: bool) -> None:
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d) if fused_qkv else None
        self.q, self.k, self.v = (None, None, None) if fused_qkv else (nn.Linear(d, d), nn.Linear(d, d),
                                                                      nn.Linear(d, d))
        self.o = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        if self.qkv is not None:
            q, k, v = self.qkv(x).split(d, dim=2)
        else:
            assert self.q is not None and self.k is not None and self.v is not None
            q, k, v = self.q(x), self.k(x), self.v(x)
        q, k, v = (z.view(b, t, self.h, self.hd).transpose(1, 2) for z in (q, k, v))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd) + bias
        p = torch.softmax(s, dim=-1)
        return self.o(torch.matmul(p, v).transpose(1, 2).reshape(b, t, d))


class _Layer(nn.Module):
    def __init__(self, d: int, heads: int, *, pre_norm: bool, fused_qkv: bool) -> None:
        super().__init__()
        self.attn = _Attn(d, heads, fused_qkv=fused_qkv)
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.pre = pre_norm

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.pre:  # GPT-2 / ViT
            x = x + self.attn(self.n1(x), bias)
            return x + self.down(F.gelu(self.up(self.n2(x)), approximate="tanh"))
        x = self.n1(x + self.attn(x, bias))  # BERT (post-norm, erf GELU)
        return self.n2(x + self.down(F.gelu(self.up(x))))


class Bert(nn.Module):
    """BERT-base shaped encoder: word + position + type embeddings, post-norm layers, pooler."""

    def __init__(self, layers: int = 6, d: int = 768, heads: int = 12, vocab: int = 30522) -> None:
        super().__init__()
        self.word, self.pos, self.typ = nn.Embedding(vocab, d), nn.Embedding(512, d), nn.Embedding(2, d)
        self.norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList([_Layer(d, heads, pre_norm=False, fused_qkv=False) for _ in range(layers)])
        self.pool = nn.Linear(d, d)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.norm(self.word(ids) + self.pos(pos) + self.typ(torch.zeros_like(ids)))
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return x, torch.tanh(self.pool(x[:, 0]))


class Gpt2(nn.Module):
    """GPT-2-small shaped decoder: causal mask sliced from a stored tril buffer, pre-norm layers,
    LM head tied to the token embedding (one shared initializer), logits over the vocabulary."""

    def __init__(self, layers: int = 12, d: int = 768, heads: int = 12, vocab: int = 50257,
                 ctx: int = 1024) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.layers = nn.ModuleList([_Layer(d, heads, pre_norm=True, fused_qkv=True) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight
        self.register_buffer("causal", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)), persistent=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(t, device=ids.device).unsqueeze(0))
        keep = self.causal[:t, :t][None, None] & mask[:, None, None, :].bool()
        bias = torch.where(keep, torch.zeros((), dtype=x.dtype), torch.tensor(torch.finfo(x.dtype).min))
        for layer in self.layers:
            x = layer(x, bias)
        return self.head(self.norm(x))


class ViT(nn.Module):
    """ViT (DeiT-small shaped): 16×16 patch-embedding conv, class token, learned positions (fixed
    image size), pre-norm layers with ``scaled_dot_product_attention``, classification head."""

    def __init__(self, image: int = 224, patch: int = 16, d: int = 384, layers: int = 12, heads: int = 6,
                 classes: int = 1000) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, d) * 0.02)
        self.blocks = nn.ModuleList([_VitBlock(d, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


class _VitBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.h = heads
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.n1(x)).reshape(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.n2(x))))


class LstmLM(nn.Module):
    """Word-level LSTM language model: embedding, 2-layer ``nn.LSTM`` (batch first), vocab head."""

    def __init__(self, vocab: int = 20000, d: int = 512, hidden: int = 1024, layers: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(self.emb(ids))
        return self.head(y)


# ------------------------------------------------------------------------------------------ exports
_TEXT = {0: "batch_size", 1: "sequence_length"}


def resnet18(path: Path) -> Path:
    torch.manual_seed(0)
    return export(ResNet18(), (torch.randn(1, 3, 224, 224),), path, inputs=["pixel_values"],
                  outputs=["logits"], axes={"pixel_values": _IMG, "logits": {0: "batch_size"}})


def mobilenet_v2(path: Path) -> Path:
    torch.manual_seed(1)
    return export(MobileNetV2(), (torch.randn(1, 3, 224, 224),), path, inputs=["pixel_values"],
                  outputs=["logits"], axes={"pixel_values": _IMG, "logits": {0: "batch_size"}})


def unet(path: Path) -> Path:
    torch.manual_seed(2)
    return export(UNet(), (torch.randn(1, 3, 256, 256),), path, inputs=["pixel_values"], outputs=["mask"],
                  axes={"pixel_values": _IMG, "mask": _IMG})


def vit_small(path: Path, *, half: bool = False) -> Path:
    torch.manual_seed(3)
    model, x = ViT(), torch.randn(1, 3, 224, 224)
    if half:
        model, x = model.half(), x.half()
    return export(model, (x,), path, inputs=["pixel_values"], outputs=["logits"],
                  axes={"pixel_values": {0: "batch_size"}, "logits": {0: "batch_size"}})


def _text_args(seq: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, 1000, (2, seq)), torch.ones(2, seq, dtype=torch.int64)


def bert(path: Path, *, layers: int = 6, half: bool = False) -> Path:
    torch.manual_seed(4)
    model = Bert(layers=layers)
    if half:
        model = model.half()
    return export(model, _text_args(), path, inputs=["input_ids", "attention_mask"],
                  outputs=["last_hidden_state", "pooler_output"],
                  axes={"input_ids": _TEXT, "attention_mask": _TEXT, "last_hidden_state": _TEXT,
                        "pooler_output": {0: "batch_size"}})


def gpt2(path: Path, *, layers: int = 12) -> Path:
    torch.manual_seed(5)
    return export(Gpt2(layers=layers), _text_args(), path, inputs=["input_ids", "attention_mask"],
                  outputs=["logits"], axes={"input_ids": _TEXT, "attention_mask": _TEXT, "logits": _TEXT})


def lstm_lm(path: Path) -> Path:
    torch.manual_seed(6)
    return export(LstmLM(), (torch.randint(0, 1000, (2, 16)),), path, inputs=["input_ids"], outputs=["logits"],
                  axes={"input_ids": _TEXT, "logits": _TEXT})


BUILDERS: dict[str, Callable[..., Any]] = {
    "resnet18": resnet18, "mobilenet_v2": mobilenet_v2, "unet": unet, "vit_small": vit_small,
    "bert": bert, "gpt2": gpt2, "lstm_lm": lstm_lm,
}
